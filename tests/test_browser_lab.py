"""Real-browser test of the Training Lab: set up a tiny comparison with the sidebar widgets, start it,
watch the live loss curve grow while the progress bar runs, and see the verdict and table at the end.

Screenshots (streaming and finished) go to $CONVCOV_SCREENSHOTS or a temporary folder.
"""

import time

import pytest

from helpers.browser import (
    BROWSER_TESTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ERRORS,
    VIEWPORT,
    collect_errors,
    screenshot_dir,
    streamlit_server,
    wait_until_rendered,
)
from helpers.lab_browser import LOSS_POINTS, set_up_tiny_run

pytestmark = BROWSER_TESTS


def test_training_lab_streams_live_curves_and_shows_the_verdict():
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = screenshot_dir()
    errors = []
    # the tiny comparison's first run can finish inside one refresh at the served default (2 s),
    # leaving one curve update to see: refresh every 0.5 s, as CONVCOV_REFRESH_S allows
    with streamlit_server(env={"CONVCOV_REFRESH_S": "0.5"}) as base_url, \
            sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        collect_errors(page, errors)
        page.goto(base_url, wait_until="domcontentloaded")  # Home first, so the app's navigation is set up
        wait_until_rendered(page)
        page.goto(f"{base_url}/Training_Lab", wait_until="domcontentloaded")
        wait_until_rendered(page)
        set_up_tiny_run(page, epochs=4)  # 60 steps a run: one epoch could end between two refreshes
        assert "2 runs:" in page.locator('[data-testid="stMain"]').inner_text()

        page.get_by_role("button", name="Run comparison").click()
        page.wait_for_selector('[data-testid="stProgress"]', timeout=60_000)
        counts, deadline = [], time.monotonic() + 300
        while time.monotonic() < deadline and page.locator('[data-testid="stProgress"]').count():
            counts.append(page.evaluate(LOSS_POINTS))
            if len({c for c in counts if c > 0}) == 3:
                page.screenshot(path=str(shots / "training_lab_streaming.png"))
            page.wait_for_timeout(250)
        growing = sorted({c for c in counts if c > 0})
        assert len(growing) >= 2, f"the live loss curve did not update while training: {counts}"

        page.get_by_text("Results", exact=True).wait_for(timeout=120_000)
        wait_until_rendered(page)
        main = page.locator('[data-testid="stMain"]').inner_text()
        # the results table, and the raw eval-mode table in its expander
        assert "Results" in main and page.locator('[data-testid="stDataFrame"]').count() == 2
        assert "Saved to the run store as comparison #" in main
        page.screenshot(path=str(shots / "training_lab_finished.png"))
        errors += [e.inner_text()[:300] for e in page.locator(ERRORS).all()]
        browser.close()
    print(f"screenshots: {shots}")
    assert not errors, f"problems seen in the browser: {errors}"
