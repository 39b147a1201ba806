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
import statistics

from streamlit.testing.v1 import AppTest

from _rerun_timing import median_ratio, open_page, warm_and_cleared  # sets the log level first

SIGMAS = (1.5, 2.0)


def move_for(k: int):
    """Alternating moves: the selected-pixel slider, then the sigma slider."""
    def move(at: AppTest, step: int) -> None:
        if step % 2 == 0:
            at.slider(key="explorer_pixel_row").set_value((step // 2) % k)
        else:
            at.select_slider(key="explorer_sigma").set_value(SIGMAS[(step // 2) % 2])
    return move


def page_at(k: int) -> AppTest:
    at = open_page("1_Covariance_Explorer.py", timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    at.slider(key="explorer_kernel_size").set_value(k).run()
    # Warm both sigma values so the cached timings measure reruns, not first renders.
    for sigma in SIGMAS:
        at.select_slider(key="explorer_sigma").set_value(sigma).run()
    return at


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args(argv)
    sizes, moves = ((5,), 3) if args.quick else ((9, 31), 15)
    print(f"{'k':>4} {'caches':<10} {'median s':>9} {'min s':>7} {'max s':>7}")
    summary = []
    for k in sizes:
        times = warm_and_cleared(lambda: page_at(k), move_for(k), moves)
        for label, seconds in times.items():
            print(f"{k:>4} {label:<10} {statistics.median(seconds):9.3f} {min(seconds):7.3f} {max(seconds):7.3f}")
        summary.append(f"k={k}: {statistics.median(times['warm']) * 1000:.0f} ms "
                       f"({median_ratio(times):.1f}x faster than uncached)")
    print("summary: median Explorer rerun after a slider move, " + "; ".join(summary))


if __name__ == "__main__":
    main()
