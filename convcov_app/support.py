"""Streamlit helpers shared by the pages: how charts are drawn (and training curves side by side), error
display, widgets that follow the data, the status box (device, versions, offline datasets, where runs are
stored)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os

import streamlit as st
import torch

from convcov_core import data
from convcov_core.plots import curves as curve_figures
from convcov_core.step import autocast_dtype
from convcov_core.train import resolve_device

from .store import run_store

log = logging.getLogger("convcov.app")

#: st.plotly_chart's settings on every page: no plotly logo, and the figures' own look
#: (convcov_core.plots.style.TEMPLATE) instead of Streamlit's theme, whose re-application on every
#: redraw made plotly.js recalculate figures that had not changed.
CHART = dict(config={"displaylogo": False}, theme=None)


def curve_charts(curves, key: str | None = None) -> None:
    """Training loss and test accuracy of runs side by side (lab.Curve objects); with `key`, the charts
    are keyed `key`_loss and `key`_accuracy."""
    left, right = st.columns(2, gap="medium")
    left.plotly_chart(curve_figures.loss_figure(curves), **CHART, key=key and f"{key}_loss")
    right.plotly_chart(curve_figures.accuracy_figure(curves), **CHART, key=key and f"{key}_accuracy")


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


def choose(where, label: str, options: list, default, key: str, **kwargs):
    """A selectbox in `where` (st or a column) whose kept value is reset to `default` (else the first
    option) when it is no longer an option."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default if default in options else options[0]
    return where.selectbox(label, options, key=key, **kwargs)


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
    if torch.cuda.is_available():
        name = f"GPU: {torch.cuda.get_device_name(0)}"
    elif torch.backends.mps.is_available():
        name = "Apple MPS"
    else:
        name = "CPU (no GPU found)"
    bf16 = autocast_dtype("auto", resolve_device("auto")) == torch.bfloat16
    return f"{name}, {'bf16 autocast' if bf16 else 'fp32'}"


def load_note() -> str:
    """" This server is busy now (load 3.9 on 2 cores): ..." when the 1-minute load average exceeds
    the cores, else "" (no load average on this system: "")."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return ""
    cores = os.cpu_count() or 1
    if load <= cores:
        return ""
    return (f" This server is busy now (load {load:.1f} on {cores} core{'s' if cores != 1 else ''}): "
            "training takes longer than on a free machine.")


@st.cache_data(ttl=60, show_spinner=False)
def present_datasets() -> dict[str, bool]:
    """{name: True} for the datasets that load here without a download (the embedded ones, and
    torchvision's once downloaded), in convcov_core.data's order."""
    return {name: ok for name, ok in data.available_datasets().items() if ok}


def dataset_status() -> str:
    """Which datasets load without a download."""
    present = list(present_datasets())
    return ", ".join(present) if present else "none (datasets need a download first)"


def status_box() -> None:
    """A bordered box: device, library versions, offline datasets, run store location."""
    with st.container(border=True):
        st.markdown("**Status**")
        versions = ", ".join(f"{p} {_version(p)}" for p in ("torch", "timm", "streamlit"))
        st.markdown(
            f"- **Device:** {device_name()}\n"
            f"- **Versions:** {versions}\n"
            f"- **Datasets available offline:** {dataset_status()}\n"
            f"- **Runs stored in:** `{run_store().path}`"
        )
