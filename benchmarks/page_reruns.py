"""Rerun time of the pages that read the bundled example, after a widget move, through AppTest.

    python benchmarks/page_reruns.py            # 8 moves per page
    python benchmarks/page_reruns.py --quick    # 2 moves (smoke test)

Each case opens a page on the bundled example network, moves one widget back and forth and times
each rerun of the whole page script. The alternative, measured in the same run, is the same page with
Streamlit's caches cleared before every rerun: what a rerun would cost if the page recomputed and
redrew everything (the transferred covariances and their figures, a saved run's AGOPs, the sampled
filters and their spectra). AppTest runs the script in-process: no browser or network time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

os.environ.setdefault("CONVCOV_HOME", tempfile.mkdtemp(prefix="convcov-bench-"))

from streamlit.testing.v1 import AppTest  # noqa: E402

from _rerun_timing import median_ratio, open_page, warm_and_cleared  # noqa: E402 (sets the log level first)
from convcov_core import examples  # noqa: E402
from convcov_core.runs import RunStore  # noqa: E402

# page, what is moved, the setup before timing ((kind, key, value) in order), the moved widget and its two values
CASES = {
    "Learned Covariances, layer slider after a transfer to k' = 25": (
        "4_Learned_Covariances.py", [("slider", "lc_new_k", 25)], ("slider", "lc_layer", (2, 3))),
    "Feature Ansatz on the example, eigenvector count": (
        "5_Feature_Ansatz.py", [("radio", "fa_source", "A saved run (weights needed)"),
                                ("select_slider", "fa_n_images", 16)], ("slider", "fa_n_vectors", (4, 6))),
    "Frequency View, learned covariance of the example, energy share": (
        "6_Frequency_View.py", [("radio", "fv_source", "Learned covariance of a network")],
        ("slider", "fv_energy", (0.8, 0.85))),
}


def widget(at: AppTest, kind: str, key: str):
    return getattr(at, kind)(key=key)


def page_after(page: str, setup: list, move: tuple) -> AppTest:
    """The page after its setup, with the moved widget's two values rendered once (so warm
    timings measure reruns, not first renders)."""
    at = open_page(page, timeout=600)
    for kind, key, value in setup:
        widget(at, kind, key).set_value(value).run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    kind, key, values = move
    for value in values:
        widget(at, kind, key).set_value(value).run()
    return at


def back_and_forth(move: tuple):
    kind, key, values = move
    return lambda at, step: widget(at, kind, key).set_value(values[step % 2])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two moves per page, for a smoke test")
    args = parser.parse_args(argv)
    moves = 2 if args.quick else 8
    examples.add_to_store(RunStore())
    print(f"{'case':<66} {'caches':<8} {'median s':>9} {'max s':>7}")
    summary = []
    for name, (page, setup, move) in CASES.items():
        times = warm_and_cleared(lambda: page_after(page, setup, move), back_and_forth(move), moves)
        for label, seconds in times.items():
            print(f"{name:<66} {label:<8} {statistics.median(seconds):9.3f} {max(seconds):7.3f}")
        summary.append(f"{page.split('_', 1)[1][:-3].replace('_', ' ')}: "
                       f"{statistics.median(times['warm']) * 1000:.0f} ms "
                       f"({median_ratio(times):.0f}x faster than uncached)")
    print("summary: median rerun after a widget move, " + "; ".join(summary))


if __name__ == "__main__":
    main()
