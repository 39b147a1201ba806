"""Real-browser test: every page of a live `streamlit run app.py`, in headless Chromium at 1280 x 800.

Pages are discovered from convcov_app/pages/, so a new page is covered without editing this file.
Screenshots go to $CONVCOV_SCREENSHOTS (or a temporary folder); the test prints where.
"""

import pytest

from convcov_app.navigation import discover_pages
from helpers.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, screenshot_dir, streamlit_server, visit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


def test_every_page_renders_without_errors():
    """Each page opened by its URL in a new tab shows itself with the app's navigation, Home first. The
    first request to the fresh server is a page's URL, not Home's: a bookmark to a page works too."""
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = screenshot_dir()
    targets = [(entry.url_path.lower(), entry.url_path, entry.title) for entry in discover_pages()]
    targets.append(("home", "", "convcov"))
    problems = {}
    with streamlit_server() as base_url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT)
        for name, path, title in targets:
            report = visit(context, f"{base_url}/{path}", shots, name)
            wrong_page = [] if report.heading == title else [f"shows {report.heading!r}, not {title!r}"]
            if report.problems() + wrong_page:
                problems[name] = report.problems() + wrong_page
        browser.close()
    print(f"screenshots of {len(targets)} pages: {shots}")
    listing = "\n".join(f"{name}: {message}" for name, found in problems.items() for message in found)
    assert not problems, f"problems seen in the browser:\n{listing}"


def test_the_readme_screenshot_script_takes_its_shots(tmp_path):
    """docs/take_screenshots.py (run by hand to refresh docs/screenshots/): the cheap shots."""
    import subprocess
    import sys

    from PIL import Image

    from helpers.browser import ROOT

    result = subprocess.run([sys.executable, str(ROOT / "docs" / "take_screenshots.py"), "home", "explorer",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert Image.open(tmp_path / "home.png").size == (1280, 900)
    width, height = Image.open(tmp_path / "covariance_explorer.png").size
    assert width == 1280 and height > 1500  # the whole page, not the window
