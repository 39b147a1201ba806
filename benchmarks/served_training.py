"""Training time inside the served app (`streamlit run app.py` with .streamlit/config.toml, as
`make run` and the Docker image serve it), with the page open in a browser on the same machine, as
when a researcher runs `make run` on a laptop.

    python benchmarks/served_training.py             # both cases below, about 6 minutes on 2 cores
    python benchmarks/served_training.py --quick     # our settings only, tiny (smoke test)

Each setting starts its own server on a fresh run store and drives headless Chromium
(/usr/bin/chromium); times are the runs' own wall times from the run store (training jobs, without
page loads), and the alternative is measured in the same run:
- Feature Ansatz: Train on the default small CNN (cnn-32,32,32 on mnist5k, two epochs), three times,
  with Streamlit's file watcher off (.streamlit/config.toml) vs Streamlit's default watcher
  (`--server.fileWatcherType auto`: watchdog's inotify watch on the app folder, which holds
  `make run`'s .venv, overflows and re-walks the tree over and over while a job trains).
- Training Lab: the quick CPU demo (4 runs of ConvMixer-64/8 with 15 x 15 frozen filters) with the
  page open while its progress and live curves refresh every 2 s (CONVCOV_REFRESH_S's default) vs
  every 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' server and Chromium helpers
from convcov_core.examples import EXAMPLE_NAME  # noqa: E402
from convcov_core.runs import RunStore  # noqa: E402
from helpers.browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_until_rendered  # noqa: E402


@contextlib.contextmanager
def served_page(path: str, flags=(), env=None):
    """The app served on a fresh run store with `path` open in Chromium: (page, store)."""
    from playwright.sync_api import sync_playwright

    home = tempfile.mkdtemp(prefix="convcov-served-")
    with (streamlit_server(env={"CONVCOV_HOME": home, **(env or {})}, flags=flags) as base,
          sync_playwright() as p):
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/{path}")
        wait_until_rendered(page)
        yield page, RunStore(Path(home) / "runs.db")
        browser.close()


def trained_runs(store: RunStore, at_least: int) -> list[float]:
    """Wall times of the runs trained so far (the app also adds its bundled example), once there are
    at_least of them."""
    deadline = time.monotonic() + 900
    while True:
        runs = sorted((r for r in store.list() if r.name != EXAMPLE_NAME), key=lambda r: r.id)
        if len(runs) >= at_least:
            return [r.wall_time for r in runs]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{at_least} run(s) did not finish within 15 minutes")
        time.sleep(0.5)


def feature_ansatz(watcher: str | None, n: int) -> list[float]:
    """n trainings of the Feature Ansatz's default CNN; watcher: the --server.fileWatcherType flag
    (None: as .streamlit/config.toml says)."""
    flags = [] if watcher is None else ["--server.fileWatcherType", watcher]
    with served_page("Feature_Ansatz", flags) as (page, store):
        for i in range(n):
            page.get_by_role("button", name="Train").click()
            trained_runs(store, i + 1)
            wait_until_rendered(page)
        return trained_runs(store, n)


def training_lab(refresh_s: float | None, seeds: int) -> list[float]:
    """The Lab's quick CPU demo (two variants x seeds runs) with the page open; refresh_s: the
    CONVCOV_REFRESH_S setting (None: the default)."""
    env = {} if refresh_s is None else {"CONVCOV_REFRESH_S": str(refresh_s)}
    with served_page("Training_Lab", env=env) as (page, store):
        if seeds != 2:
            page.get_by_role("spinbutton", name="Seeds (runs per variant)").fill(str(seeds))
            page.keyboard.press("Enter")
            wait_until_rendered(page)
        page.get_by_role("button", name="Run comparison").click()
        times = trained_runs(store, 2 * seeds)
        page.get_by_role("heading", name="Results").wait_for(timeout=60_000)
        return times


#: case -> {setting: function of `quick` returning the runs' wall times}, ours first
CASES = {
    "Feature Ansatz CNN": {
        "file watcher off (ours)": lambda quick: feature_ansatz(None, 1 if quick else 3),
        "Streamlit's default watcher": lambda quick: feature_ansatz("auto", 3)},
    "Training Lab quick demo": {
        "refresh every 2 s (ours)": lambda quick: training_lab(None, 1 if quick else 2),
        "refresh every 1 s": lambda quick: training_lab(1.0, 2)},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="our settings only, one FA training, "
                                                             "one seed in the Lab")
    args = parser.parse_args(argv)
    print(f"{'case':<24} {'setting':<28} {'median s':>9}  wall time of each run (s)")
    summary = []
    for case, settings in CASES.items():
        medians = {}
        for setting, measure in list(settings.items())[:1 if args.quick else None]:
            times = measure(args.quick)
            medians[setting] = statistics.median(times)
            print(f"{case:<24} {setting:<28} {medians[setting]:9.1f}  {', '.join(f'{t:.1f}' for t in times)}")
        ours, *other = medians.values()
        versus = f" vs {other[0]:.1f} s ({other[0] / ours:.1f}x)" if other else ""
        summary.append(f"{case} {ours:.1f} s per run{versus}")
    print("summary: training in the served app with the page open, our settings vs the alternative: "
          + "; ".join(summary))


if __name__ == "__main__":
    main()
