"""Background jobs seen by real visitors in headless Chromium (one server for the module, tiny runs):
a reload keeps your running comparison with its live curves and Cancel, another visitor sees it as
someone else's with its progress and no Cancel, and three visitors pressing Run together start one
job (CONVCOV_MAX_JOBS=1) while the other two are told the server is busy.

A screenshot of the reloaded Lab goes to $CONVCOV_SCREENSHOTS or a temporary folder.
"""

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

#: 100 epochs of 15 steps per run: long enough to reload, look and cancel; far under these limits.
SERVER_ENV = {"CONVCOV_REFRESH_S": "0.5", "CONVCOV_MAX_JOBS": "1", "CONVCOV_MAX_JOB_SAMPLES": "10000000"}
LONG_EPOCHS = 100
WAIT_MS = 120_000
OTHERS_JOB = "another visitor's job is running"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with streamlit_server(env=SERVER_ENV) as base_url, sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium, base_url
        finally:
            chromium.close()


def open_lab(chromium, base_url: str, errors: list):
    """A new visitor (own browser context) on the Training Lab, set up for a tiny long comparison."""
    page = chromium.new_context(viewport=VIEWPORT).new_page()
    collect_errors(page, errors)
    page.goto(base_url, wait_until="domcontentloaded")  # Home first, so the app's navigation is set up
    wait_until_rendered(page)
    page.goto(f"{base_url}/Training_Lab", wait_until="domcontentloaded")
    wait_until_rendered(page)
    set_up_tiny_run(page, epochs=LONG_EPOCHS)
    return page


def cancel_button(page):
    return page.get_by_role("button", name="Cancel")


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def wait_for_curve(page, points: int = 0) -> None:
    """Wait for the running job's progress bar, then until its live loss curve has more than `points`
    points (before a job the page draws an example's curves in a chart of the same title)."""
    page.wait_for_selector('[data-testid="stProgress"]', timeout=WAIT_MS)
    page.wait_for_function(f"({LOSS_POINTS})() > {points}", timeout=WAIT_MS)


def cancel_and_wait(page) -> None:
    """Press Cancel and wait until the job has ended (its progress bar and Cancel are gone)."""
    cancel_button(page).click()
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stProgress\"]')", timeout=WAIT_MS)
    wait_until_rendered(page)
    assert cancel_button(page).count() == 0


def test_a_reload_keeps_the_running_job_with_its_curves_and_cancel(browser):
    chromium, base_url = browser
    errors = []
    page = open_lab(chromium, base_url, errors)
    page.get_by_role("button", name="Run comparison").click()
    wait_for_curve(page)
    assert "visitor=" in page.url

    page.reload(wait_until="domcontentloaded")
    wait_for_curve(page)
    cancel_button(page).wait_for(timeout=WAIT_MS)
    assert "The server is busy" not in main_text(page)
    assert "Your job, found again after a reload: compare default, gaussian on noisy-bars" in main_text(page)
    wait_for_curve(page, 20)
    page.screenshot(path=str(screenshot_dir() / "training_lab_reloaded.png"))

    other = chromium.new_context(viewport=VIEWPORT).new_page()
    other.goto(f"{base_url}/Training_Lab", wait_until="domcontentloaded")
    other.get_by_text(OTHERS_JOB).wait_for(timeout=WAIT_MS)
    other.locator('[data-testid="stProgress"]').wait_for(timeout=WAIT_MS)
    assert cancel_button(other).count() == 0

    cancel_and_wait(page)
    errors += [e.inner_text()[:300] for e in page.locator(ERRORS).all()]
    other.get_by_text(OTHERS_JOB).wait_for(state="detached", timeout=WAIT_MS)
    assert not errors, f"problems seen in the browser: {errors}"


def test_three_visitors_pressing_run_together_start_one_job_and_the_others_are_told_why(browser):
    chromium, base_url = browser
    errors = []
    pages = [open_lab(chromium, base_url, errors) for _ in range(3)]
    for page in pages:  # as close together as the browser allows: no waiting between the clicks
        page.get_by_role("button", name="Run comparison").click()
    for page in pages:  # each sees either its own job (Cancel) or another visitor's
        cancel_button(page).or_(page.get_by_text(OTHERS_JOB)).first.wait_for(timeout=WAIT_MS)
    owners = [page for page in pages if cancel_button(page).count()]
    assert len(owners) == 1, f"{len(owners)} visitors got a running job; CONVCOV_MAX_JOBS is 1"
    for page in pages:
        if page is not owners[0]:
            page.locator('[data-testid="stProgress"]').wait_for(timeout=WAIT_MS)
            text = main_text(page)
            assert "The server is busy. this server already runs 1 job(s)" in text and "% done" in text
    cancel_and_wait(owners[0])
    for page in pages:
        errors += [e.inner_text()[:300] for e in page.locator(ERRORS).all()]
    assert not errors, f"problems seen in the browser: {errors}"
