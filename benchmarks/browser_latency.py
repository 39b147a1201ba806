"""What a visitor waits for on the Covariance Explorer: a slider move in Chromium until the figure it
changes has been redrawn, against the server-side rerun of the same move (AppTest) in the same run.

    python benchmarks/browser_latency.py            # k = 9, 12 moves of each slider
    python benchmarks/browser_latency.py --quick    # k = 5, 2 moves each (smoke test)

The app is served as `make run` serves it (tests/helpers/browser.streamlit_server), on a fresh run
store, and driven by headless Chromium (/usr/bin/chromium). A move is a key press on the focused
slider (the σ slider: ArrowRight and ArrowLeft in turn; the pixel-row slider: the same); it is done
when the figure's title in the page shows the new value (the main covariance figure for σ, the
block figure for the pixel). Times include the browser's layout and plotly's drawing, the websocket
and the server's rerun; AppTest's rerun time is only the last of these. The machine's load average is
printed: on a busy machine both grow.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from _rerun_timing import ROOT, open_page  # sets the log level first

sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' server and Chromium helpers
from convcov_app.labels import SIGMA_OPTIONS  # noqa: E402
from helpers.browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_until_rendered  # noqa: E402

TITLE = '[data-testid="stPlotlyChart"] .gtitle'


def title_shows(page, text: str, timeout_s: float) -> None:
    """Wait (polling each animation frame) until some figure title on the page contains text."""
    page.wait_for_function(f"text => [...document.querySelectorAll('{TITLE}')].some(t => t.textContent.includes(text))",
                           arg=text, polling="raf", timeout=timeout_s * 1000)


def browser_moves(page, label: str, texts: list[str], timeout_s: float) -> list[float]:
    """Seconds from each key press on the slider `label` to the title showing texts[step]."""
    slider = page.locator(f'input[type="range"][aria-label="{label}"]').first
    times = []
    for step, text in enumerate(texts):
        slider.focus()
        start = time.perf_counter()
        page.keyboard.press("ArrowRight" if step % 2 == 0 else "ArrowLeft")
        title_shows(page, text, timeout_s)
        times.append(time.perf_counter() - start)
    return times


def server_moves(k: int, key: str, values: list, timeout_s: float) -> list[float]:
    """Seconds per AppTest rerun for the same widget values."""
    at = open_page("1_Covariance_Explorer.py", timeout_s)
    at.slider(key="explorer_kernel_size").set_value(k).run()
    times = []
    for value in values:
        widget = at.select_slider(key=key) if key == "explorer_sigma" else at.slider(key=key)
        widget.set_value(value)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception, [e.value for e in at.exception]
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="k = 5, 2 moves per slider (smoke test)")
    args = parser.parse_args(argv)
    k, moves, timeout_s = (5, 2, 300) if args.quick else (9, 12, 120)
    start = SIGMA_OPTIONS.index(2.0)
    sigmas = [SIGMA_OPTIONS[start + 1] if step % 2 == 0 else SIGMA_OPTIONS[start] for step in range(moves)]
    centre = k // 2
    rows = [centre + 1 if step % 2 == 0 else centre for step in range(moves)]
    from playwright.sync_api import sync_playwright

    with streamlit_server(env={"CONVCOV_HOME": tempfile.mkdtemp()}) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/Covariance_Explorer")
        wait_until_rendered(page, timeout=timeout_s)
        if k != 9:
            slider = page.locator('input[type="range"][aria-label="Kernel size k"]').first
            slider.focus()
            for _ in range((9 - k) // 2):
                page.keyboard.press("ArrowLeft")
            title_shows(page, f"k = {k},", timeout_s)
            wait_until_rendered(page, timeout=timeout_s)
        browser_s = {"σ": browser_moves(page, "σ (pixels, log scale)", [f"σ = {s:g})" for s in sigmas], timeout_s),
                     "pixel": browser_moves(page, "Row i", [f"Block of pixel ({r}, {centre})" for r in rows],
                                            timeout_s)}
        browser.close()
    server_s = {"σ": server_moves(k, "explorer_sigma", sigmas, timeout_s),
                "pixel": server_moves(k, "explorer_pixel_row", rows, timeout_s)}
    load = os.getloadavg()[0]
    print(f"Covariance Explorer at k = {k}, {moves} moves per slider; 1-minute load average {load:.1f} "
          f"on {os.cpu_count()} cores")
    for name in browser_s:
        b, s = statistics.median(browser_s[name]), statistics.median(server_s[name])
        print(f"  {name} slider: browser {1000 * b:.0f} ms median (max {1000 * max(browser_s[name]):.0f}), "
              f"server rerun {1000 * s:.0f} ms median: the visitor waits {b / s:.1f}x the rerun")
    waits = [t for times in browser_s.values() for t in times]
    print(f"Summary: a slider move takes {1000 * statistics.median(waits):.0f} ms median in the browser at "
          f"k = {k} (load {load:.1f})")


if __name__ == "__main__":
    main()
