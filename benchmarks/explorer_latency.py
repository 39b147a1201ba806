"""Rerun time of the Covariance Explorer page after a slider move, through Streamlit's AppTest.

    python benchmarks/explorer_latency.py            # k = 9 and k = 31, 15 moves each
    python benchmarks/explorer_latency.py --quick    # k = 5, 3 moves (smoke test)

For each kernel size the script moves the selected-pixel slider and the sigma slider back and forth
and times each rerun of the whole page script (widgets, figures, serialization to the AppTest
client). The alternative it is measured against, in the same run, is the same page with its caches
cleared before every rerun: what the page would cost if it recomputed everything on each interaction.
AppTest runs the script in-process, so browser rendering and network time are not included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")  # AppTest's bare-mode warnings, not results

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "1_Covariance_Explorer.py")
sys.path.insert(0, str(ROOT))  # pages import the top-level app_support module
from app_support import NAVIGATION_KEY  # noqa: E402
SIGMAS = (1.5, 2.0)


def timed_moves(at: AppTest, k: int, moves: int, *, clear_cache: bool) -> list[float]:
    """Seconds per rerun over `moves` alternating pixel / sigma slider moves."""
    times = []
    for step in range(moves):
        if step % 2 == 0:
            at.slider(key="pixel_row").set_value((step // 2) % k)
        else:
            at.select_slider(key="sigma").set_value(SIGMAS[(step // 2) % 2])
        if clear_cache:
            st.cache_data.clear()
            st.cache_resource.clear()
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception, [e.value for e in at.exception]
    return times


def page_at(k: int) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.session_state[NAVIGATION_KEY] = True  # as behind app.py's navigation
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.slider(key="kernel_size").set_value(k).run()
    # Warm both sigma values so the cached timings measure reruns, not first renders.
    for sigma in SIGMAS:
        at.select_slider(key="sigma").set_value(sigma).run()
    return at


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args(argv)
    sizes, moves = ((5,), 3) if args.quick else ((9, 31), 15)
    print(f"{'k':>4} {'caches':<10} {'median s':>9} {'min s':>7} {'max s':>7}")
    summary = []
    for k in sizes:
        medians = {}
        for clear in (False, True):
            times = timed_moves(page_at(k), k, moves, clear_cache=clear)
            label = "cleared" if clear else "warm"
            medians[label] = statistics.median(times)
            print(f"{k:>4} {label:<10} {medians[label]:9.3f} {min(times):7.3f} {max(times):7.3f}")
        summary.append(f"k={k}: {medians['warm'] * 1000:.0f} ms "
                       f"({medians['cleared'] / medians['warm']:.1f}x faster than uncached)")
    print("summary: median Explorer rerun after a slider move, " + "; ".join(summary))


if __name__ == "__main__":
    main()
