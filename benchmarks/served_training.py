"""Training time inside the served app (`bin/serve`, what `make run` and the Docker image run), with
Streamlit's file watcher off (our config) against Streamlit's default watcher.

    python benchmarks/served_training.py             # 3 trainings per setting
    python benchmarks/served_training.py --quick     # one training, our config only (smoke test)

Each setting starts its own server on a fresh run store, opens the Feature Ansatz page in headless
Chromium (/usr/bin/chromium), presses Train for the default small CNN (cnn-32,32,32 on mnist5k, two
epochs) and waits for the analysis; the time is the run's own wall time from the run store (the
training job, without page loads). Streamlit's default watcher (`--server.fileWatcherType auto`:
watchdog with inotify on the app folder, which holds `make run`'s .venv) keeps a thread of the server
process busy while a job trains beside it; .streamlit/config.toml turns the watcher off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' server and Chromium helpers
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, free_port, wait_for_health, wait_until_rendered  # noqa: E402
from convcov_core.feature_ansatz import SAVED_CNN_NAME  # noqa: E402
from convcov_core.runs import RunStore  # noqa: E402

#: label -> the --server.fileWatcherType flag (None: none given, .streamlit/config.toml decides)
SETTINGS = {"off (our config)": None, "Streamlit's default (auto)": "auto"}


def served_trainings(watcher: str | None, n: int) -> list[float]:
    """Wall times (s) of n Feature Ansatz trainings in one `bin/serve` server with this watcher."""
    from playwright.sync_api import sync_playwright

    home = tempfile.mkdtemp(prefix="convcov-served-")
    port = free_port()
    env = {**os.environ, "PYTHON": sys.executable, "PORT": str(port), "ADDRESS": "127.0.0.1",
           "CONVCOV_HOME": home}
    flags = [] if watcher is None else ["--server.fileWatcherType", watcher]
    server = subprocess.Popen([str(ROOT / "bin" / "serve"), *flags],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, server)
        store = RunStore(Path(home) / "runs.db")

        def trained() -> list:  # the Feature Ansatz runs (the app also adds its bundled example)
            return sorted((r for r in store.list() if r.name == SAVED_CNN_NAME), key=lambda r: r.id)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/Feature_Ansatz")
            wait_until_rendered(page)
            for i in range(n):
                page.get_by_role("button", name="Train").click()
                deadline = time.monotonic() + 600
                while len(trained()) <= i:
                    if time.monotonic() > deadline:
                        raise TimeoutError("the training job did not finish within 10 minutes")
                    time.sleep(0.5)
                wait_until_rendered(page)
            browser.close()
        return [run.wall_time for run in trained()]
    finally:
        server.terminate()
        server.wait(timeout=20)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one training with our config only")
    parser.add_argument("--repeats", type=int, default=3, help="trainings per setting (default 3)")
    args = parser.parse_args(argv)
    settings = dict(list(SETTINGS.items())[:1]) if args.quick else SETTINGS
    n = 1 if args.quick else args.repeats
    print(f"{'file watcher':<28} {'median s':>9}  wall times of the trainings (s)")
    medians = {}
    for label, watcher in settings.items():
        times = served_trainings(watcher, n)
        medians[label] = statistics.median(times)
        print(f"{label:<28} {medians[label]:9.1f}  {', '.join(f'{t:.1f}' for t in times)}")
    ours, *rest = medians.values()
    ratio = f", {rest[0] / ours:.1f}x faster than with Streamlit's default watcher ({rest[0]:.1f} s)" if rest else ""
    print(f"summary: the Feature Ansatz CNN trains in {ours:.1f} s in the served app{ratio}")


if __name__ == "__main__":
    main()
