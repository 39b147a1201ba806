"""Pages and how a visitor reaches them: the page list (read from pages/, so a new page file shows up
in the sidebar and on Home without editing app.py) and each page's set-up.

app.py builds the navigation with st.navigation (Home first, then every page). A visitor whose first
request to a freshly started server is a page's URL is served by Streamlit's pages/ folder mode
instead (the folder is still there, so until the first st.navigation call Streamlit runs the page on
its own, with a sidebar that lacks Home); page_setup hands such a visit over to app.py, which opens
the page the visitor asked for. A page opened on its own (AppTest.from_file("pages/..."), a script
run) is not app.py's and is left alone.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.source_util import page_icon_and_name, page_sort_key

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
PAGES_DIR = ROOT / "pages"
NAVIGATION_KEY = "convcov_navigation"  # set by app.py once its st.navigation is in place
WANTED_PAGE_KEY = "convcov_wanted_page"


@dataclass(frozen=True)
class PageEntry:
    """A page script in pages/: its path, the title Streamlit shows, its URL path, its summary."""

    path: Path
    title: str
    url_path: str
    summary: str


def discover_pages(pages_dir: Path = PAGES_DIR) -> list[PageEntry]:
    """Every page in `pages_dir` in Streamlit's sidebar order; the summary is the first line of
    the page's module docstring (read without running the page, once per version of the file)."""
    entries = []
    for path in sorted(pages_dir.glob("*.py"), key=page_sort_key):
        _, name = page_icon_and_name(path)
        entries.append(PageEntry(path, name.replace("_", " "), name, _summary(path, path.stat().st_mtime_ns)))
    return entries


@functools.lru_cache(maxsize=64)
def _summary(path: Path, mtime_ns: int) -> str:
    """First line of the module docstring of the file at `path` as it was at mtime_ns (app.py lists
    the pages on every rerun: parsing them each time took a tenth of a slider move's server time)."""
    docstring = (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").strip()
    return docstring.splitlines()[0] if docstring else ""


def _served_without_navigation() -> bool:
    """True when app.py is the app being served but its navigation has not run for this visitor:
    Streamlit's pages/ folder mode is running this page (see the module docstring)."""
    ctx = get_script_run_ctx(suppress_warning=True)
    return (ctx is not None and Path(ctx.main_script_path).resolve() == APP
            and not st.session_state.get(NAVIGATION_KEY))


def page_setup(title: str) -> None:
    """Page config shared by every page: wide layout, the page title in the browser tab; a visit
    served by the pages/ folder mode is handed over to app.py first."""
    if _served_without_navigation():
        wanted = [entry.path.name for entry in discover_pages() if entry.title == title]
        st.session_state[WANTED_PAGE_KEY] = wanted[0] if wanted else None
        st.switch_page("app.py")
    st.set_page_config(page_title=f"{title} · convcov", layout="wide")


def open_wanted_page(pages: dict) -> None:
    """In app.py, after st.navigation: go to the page a visitor asked for by URL (see page_setup).
    `pages` maps page file names to their st.Page."""
    st.session_state[NAVIGATION_KEY] = True
    wanted = st.session_state.pop(WANTED_PAGE_KEY, None)
    if wanted in pages:
        st.switch_page(pages[wanted])
