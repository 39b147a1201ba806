"""Streamlit helpers shared by app.py and the pages: page discovery, the status box, error display.

Lives at the top level (not in pages/, where Streamlit would list it as a page, and not in
convcov_core, which never imports streamlit).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import importlib.util
import inspect
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.source_util import page_icon_and_name, page_sort_key

ROOT = Path(__file__).resolve().parent
PAGES_DIR = ROOT / "pages"

log = logging.getLogger("convcov.app")


@dataclass(frozen=True)
class PageEntry:
    """A page script in pages/: its path, the title Streamlit shows, its URL path, its summary."""

    path: Path
    title: str
    url_path: str
    summary: str


def discover_pages(pages_dir: Path = PAGES_DIR) -> list[PageEntry]:
    """Every page in `pages_dir` in Streamlit's sidebar order; the summary is the first line of
    the page's module docstring (read without running the page)."""
    entries = []
    for path in sorted(pages_dir.glob("*.py"), key=page_sort_key):
        _, name = page_icon_and_name(path)
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        summary = docstring.strip().splitlines()[0] if docstring.strip() else ""
        entries.append(PageEntry(path, name.replace("_", " "), name, summary))
    return entries


NAVIGATION_KEY = "convcov_navigation"  # set by app.py once its st.navigation is in place
WANTED_PAGE_KEY = "convcov_wanted_page"


def page_setup(title: str) -> None:
    """Page config shared by every page: wide layout, the page title in the browser tab.

    A visitor who opens a page's URL first gets the page run by Streamlit's pages/ folder mode,
    whose sidebar lacks Home: hand over to app.py (which builds the navigation) and come back.
    Outside a Streamlit session (a page imported as __main__ by a spawned process) nothing happens."""
    if get_script_run_ctx(suppress_warning=True) is not None and not st.session_state.get(NAVIGATION_KEY):
        st.session_state[WANTED_PAGE_KEY] = Path(inspect.currentframe().f_back.f_code.co_filename).name
        st.switch_page("app.py")
    st.set_page_config(page_title=f"{title} · convcov", layout="wide")


def open_wanted_page(pages: dict) -> None:
    """In app.py, after st.navigation: go to the page a visitor asked for by URL (see page_setup).
    `pages` maps page file names to their st.Page."""
    st.session_state[NAVIGATION_KEY] = True
    wanted = st.session_state.pop(WANTED_PAGE_KEY, None)
    if wanted in pages:
        st.switch_page(pages[wanted])


@contextlib.contextmanager
def shown_errors():
    """Show an exception raised inside the block as `st.error` instead of a traceback.

    A ValueError carries a message meant for the user and is shown as is; anything else is a bug:
    its type and message are shown, the traceback goes to the server log.
    """
    try:
        yield
    except ValueError as err:
        st.error(str(err))
    except Exception as err:  # a bug: keep the page alive, keep the traceback for the log
        log.exception("unexpected error in page")
        st.error(f"Unexpected error ({type(err).__name__}): {err}. Details are in the server log.")


def reset_when_changed(marker: str, value, widgets: dict) -> None:
    """Set the keyed widgets in `widgets` (key -> value) whenever `value` differs from the one last
    seen under `marker`. For widgets whose range or default follow the data: create them without a
    default. After a run that ended in st.stop(), Streamlit keeps a keyed widget's old value while
    the browser shows the widget's new default, so a new network (or image count) must set them."""
    if st.session_state.get(marker) != value:
        st.session_state[marker] = value
        st.session_state.update(widgets)


def upload_limit() -> int:
    """Bytes a checkpoint may have: CONVCOV_MAX_CHECKPOINT_MB within Streamlit's server.maxUploadSize."""
    from convcov_core import lab

    return lab.max_upload_bytes(ceiling_mb=st.get_option("server.maxUploadSize"))


def checkpoint_uploader(prefix: str):
    """Sidebar widgets for a user's checkpoint: the file (keys `<prefix>_upload`) and its
    architecture (`<prefix>_arch`). Returns (upload, architecture spec), or None before a file."""
    from convcov_core import models

    upload = st.file_uploader("Checkpoint (state dict)", type=[s[1:] for s in models.CHECKPOINT_SUFFIXES],
                              key=f"{prefix}_upload",
                              help="safetensors, or a torch.save file of model.state_dict(); read with "
                                   "weights_only=True, so code inside a file never runs.")
    arch = st.selectbox("Architecture", list(models.CHECKPOINT_ARCHITECTURES), key=f"{prefix}_arch")
    st.caption(f"Up to {upload_limit() / 2**20:.0f} MiB. A ConvMixer's sizes are read from "
               "the file; for ConvNeXt pick the variant it was saved from.")
    return None if upload is None else (upload, models.CHECKPOINT_ARCHITECTURES[arch])


def read_upload_once(memo_name: str, upload, read, *args,
                     what: str = "the checkpoint (weights only; no code in it runs)"):
    """read(file bytes, file name, *args, max_bytes=upload_limit()), once per uploaded file and
    args in this session (kept in st.session_state[memo_name]); a ValueError is kept too and
    raised again on every rerun, for shown_errors to display."""
    memo_key = (upload.file_id, *args)
    memo = st.session_state.get(memo_name)
    if memo is None or memo[0] != memo_key:
        try:
            with st.spinner(f"Reading {what}…"):
                value = read(upload.getvalue(), upload.name, *args, max_bytes=upload_limit())
        except ValueError as err:
            value = err
        memo = st.session_state[memo_name] = (memo_key, value)
    if isinstance(memo[1], ValueError):
        raise memo[1]
    return memo[1]


def add_bundled_example() -> None:
    """Put the bundled example network in the run store, once per store (see convcov_core.examples),
    so the pages that read trained filters have one on a fresh install."""
    _add_example_once(str(runs_path()))


@st.cache_resource(show_spinner=False)
def _add_example_once(store_path: str) -> None:
    """A store that cannot be written leaves the pages without the example, and the reason in the
    server log (once: the attempt is cached either way)."""
    from convcov_core import examples
    from convcov_core.runs import RunStore

    try:
        examples.add_to_store(RunStore(store_path))
    except Exception:
        log.exception("could not add the bundled example to the run store %s", store_path)


@st.cache_data(max_entries=16, show_spinner=False)
def run_reach_warning(store_path: str, run_id: int) -> str | None:
    """lab.run_reach_warning of a stored run, once per run of the store at `store_path` (a stored
    run never changes)."""
    from convcov_core import lab
    from convcov_core.runs import RunStore

    return lab.run_reach_warning(RunStore(store_path).get(run_id))


def stored_runs_or_warning(read, hidden: str = "saved runs are hidden") -> list:
    """`read()`, a listing from the run store; [] and a warning that says what is `hidden` when
    the store cannot be read (a broken store must not take a page down with it)."""
    try:
        return read()
    except Exception as err:
        st.warning(f"The run store could not be read ({err}); {hidden}.")
        return []


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def device_name() -> str:
    """The device training would use (the CUDA GPU's name, Apple MPS, or CPU) and its precision."""
    import torch

    from convcov_core.step import autocast_dtype
    from convcov_core.train import resolve_device

    if torch.cuda.is_available():
        name = f"GPU: {torch.cuda.get_device_name(0)}"
    elif torch.backends.mps.is_available():
        name = "Apple MPS"
    else:
        name = "CPU (no GPU found)"
    bf16 = autocast_dtype("auto", resolve_device("auto")) == torch.bfloat16
    return f"{name}, {'bf16 autocast' if bf16 else 'fp32'}"


@st.cache_data(ttl=60, show_spinner=False)
def present_datasets() -> dict[str, bool]:
    """{name: True} for the datasets that load here without a download (the embedded ones, and
    torchvision's once downloaded), in convcov_core.data's order."""
    from convcov_core import data

    return {name: ok for name, ok in data.available_datasets().items() if ok}


def dataset_status() -> str:
    """Which datasets load without a download, from convcov_core.data when it is installed."""
    if importlib.util.find_spec("convcov_core.data") is None:
        return "dataset module not installed"
    from convcov_core import data

    present = [name for name, ok in data.available_datasets().items() if ok]
    return ", ".join(present) if present else "none (datasets need a download first)"


def runs_path() -> Path:
    """Where the run store keeps its SQLite file: $CONVCOV_HOME/runs.db (default ~/.convcov)."""
    if importlib.util.find_spec("convcov_core.paths") is not None:
        from convcov_core import paths

        return paths.convcov_home() / "runs.db"
    return Path(os.environ.get("CONVCOV_HOME", "~/.convcov")).expanduser() / "runs.db"


def status_box() -> None:
    """A bordered box: device, library versions, offline datasets, run store location."""
    with st.container(border=True):
        st.markdown("**Status**")
        versions = ", ".join(f"{p} {_version(p)}" for p in ("torch", "timm", "streamlit"))
        st.markdown(
            f"- **Device:** {device_name()}\n"
            f"- **Versions:** {versions}\n"
            f"- **Datasets available offline:** {dataset_status()}\n"
            f"- **Runs stored in:** `{runs_path()}`"
        )
