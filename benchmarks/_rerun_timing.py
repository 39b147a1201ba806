"""Rerun timing through Streamlit's AppTest, shared by explorer_latency.py and page_reruns.py.

The alternative each page is measured against, in the same run, is the same page with Streamlit's
caches cleared before every rerun: what a rerun would cost if the page recomputed everything.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")  # AppTest's bare-mode warnings, not results

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # pages import the convcov_app package from the repository root


def open_page(page: str, timeout: float) -> AppTest:
    """The page's AppTest, run once."""
    return AppTest.from_file(str(ROOT / "convcov_app" / "pages" / page), default_timeout=timeout).run()


def timed_reruns(at: AppTest, move: Callable[[AppTest, int], None], moves: int, *,
                 clear_cache: bool) -> list[float]:
    """Seconds per rerun over `moves` calls of move(at, step), each setting one widget's value."""
    times = []
    for step in range(moves):
        move(at, step)
        if clear_cache:
            st.cache_data.clear()
            st.cache_resource.clear()
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception, [e.value for e in at.exception]
    return times


def warm_and_cleared(make_page: Callable[[], AppTest], move: Callable[[AppTest, int], None],
                     moves: int) -> dict[str, list[float]]:
    """{"warm": seconds, "cleared": seconds}: the same moves on two fresh pages, caches kept and
    caches cleared before every rerun."""
    return {label: timed_reruns(make_page(), move, moves, clear_cache=label == "cleared")
            for label in ("warm", "cleared")}


def median_ratio(times: dict[str, list[float]]) -> float:
    """How many times faster the warm median rerun is than the uncached one."""
    return statistics.median(times["cleared"]) / statistics.median(times["warm"])
