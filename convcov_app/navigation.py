"""The app's pages and how a visitor reaches them: Home, then every numbered script in
convcov_app/pages/ (N_Title_Words.py, in the order of N), each at its own URL path (/Title_Words), so
a new page file shows up in the sidebar and on Home without editing app.py.

app.py hands these to st.navigation, which serves every URL, a page's URL on a fresh server included:
a visitor always gets the app's navigation, Home first.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent / "pages"
HOME = PAGES_DIR / "home.py"
_PAGE_FILE = re.compile(r"(\d+)_(\w+)\.py")


@dataclass(frozen=True)
class PageEntry:
    """A page script: its path, the title the sidebar shows, its URL path, its summary."""

    path: Path
    title: str
    url_path: str
    summary: str


def discover_pages(pages_dir: Path = PAGES_DIR) -> list[PageEntry]:
    """Every numbered page in `pages_dir`, by number; the summary is the first line of the page's
    module docstring (read without running the page, once per version of the file)."""
    numbered = sorted((int(match[1]), match[2], path) for path in pages_dir.glob("*.py")
                      if (match := _PAGE_FILE.fullmatch(path.name)))
    return [PageEntry(path, name.replace("_", " "), name, _summary(path, path.stat().st_mtime_ns))
            for _, name, path in numbered]


@functools.lru_cache(maxsize=64)
def _summary(path: Path, mtime_ns: int) -> str:
    """First line of the module docstring of the file at `path` as it was at mtime_ns (Home lists
    the pages on every rerun: parsing them each time took a tenth of a slider move's server time)."""
    docstring = (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").strip()
    return docstring.splitlines()[0] if docstring else ""


def app_pages() -> list[st.Page]:
    """Home (the default page, at / and /home), then every page at its URL path."""
    return [st.Page(HOME, title="Home", url_path="home", default=True),
            *(st.Page(entry.path, title=entry.title, url_path=entry.url_path) for entry in discover_pages())]


def page_setup(title: str) -> None:
    """Page config shared by every page: wide layout, the page title in the browser tab."""
    st.set_page_config(page_title=f"{title} · convcov", layout="wide")
