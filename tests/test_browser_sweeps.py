"""Real-browser test of the Sweeps page: build a 2 x 2 grid (kernel sizes 3 and 5 x trained and frozen
filters) of tiny trials with 2 seeds in the sidebar, run it to the end on the local pool, and see
the effect heatmap with no exception on screen; and its Ray section with CONVCOV_RAY_LOCAL off
(Connect starts nothing and says how to set a cluster) and on (Connect starts nothing either: each
sweep's driver process starts its own Ray, outside the server).

The whole page is saved as sweeps.png (and sweeps_ray_off.png, sweeps_ray_on.png) in
$CONVCOV_SCREENSHOTS or a temporary folder (CONVCOV_SCREENSHOTS=docs/img refreshes docs' pictures).
"""

import pytest

from helpers.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ERRORS,
    VIEWPORT,
    console_text,
    is_harmless,
    screenshot_dir,
    screenshot_whole_page,
    session_processes,
    stop_what_is_left,
    streamlit_server,
    wait_until_rendered,
)
from helpers.sweeps_browser import set_up_tiny_grid

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]

#: The effect heatmap's grid (rows, columns: its tick labels), or null when there is none.
HEATMAP_SHAPE = """() => {
    const chart = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
        .find(div => div.data && div.data[0].type === 'heatmap' && div.data[0].colorbar
                     && div.data[0].showscale !== false);
    return chart ? [chart.layout.yaxis.ticktext.length, chart.layout.xaxis.ticktext.length] : null;
}"""


def test_sweeps_page_runs_a_tiny_grid_to_the_end_and_shows_the_heatmap():
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = screenshot_dir()
    errors = []
    with streamlit_server(env={"CONVCOV_REFRESH_S": "0.5"}) as base_url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.on("console", lambda msg: msg.type == "error" and not is_harmless(console_text(msg))
                    and errors.append(console_text(msg)))
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(base_url, wait_until="domcontentloaded")  # Home first, so the app's navigation is set up
            wait_until_rendered(page)
            page.goto(f"{base_url}/Sweeps", wait_until="domcontentloaded")
            wait_until_rendered(page)
            set_up_tiny_grid(page)
            main = page.locator('[data-testid="stMain"]')
            assert "16 trials: 4 cells × 2 schemes × 2 seeds" in main.inner_text()

            page.get_by_role("button", name="Run sweep").click()
            page.wait_for_selector('[data-testid="stProgress"]', timeout=60_000)
            page.wait_for_selector('[data-testid="stProgress"]', state="detached", timeout=300_000)
            page.get_by_text("Effect per cell", exact=True).wait_for(timeout=60_000)
            wait_until_rendered(page)
            assert "Sweep sweep-1: ran 16 trials" in main.inner_text()
            assert page.evaluate(HEATMAP_SHAPE) == [2, 2]  # filters x kernel sizes
            errors += [e.inner_text()[:300] for e in page.locator(ERRORS).all()]
            screenshot_whole_page(page, shots / "sweeps.png")
        finally:
            browser.close()
    print(f"screenshot: {shots / 'sweeps.png'}")
    assert not errors, f"problems seen in the browser: {errors}"


def connect_to_ray(base_url: str, browser, errors: list):
    """The Sweeps page with "a Ray cluster" chosen and Connect clicked (a small grid first, so the
    sidebar's Ray section and the main area's message fit one picture)."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("console", lambda msg: msg.type == "error" and not is_harmless(console_text(msg))
            and errors.append(console_text(msg)))
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(base_url, wait_until="domcontentloaded")
    wait_until_rendered(page)
    page.goto(f"{base_url}/Sweeps", wait_until="domcontentloaded")
    wait_until_rendered(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("a Ray cluster", exact=True).click()
    wait_until_rendered(page)
    page.get_by_role("button", name="Connect").click()
    wait_until_rendered(page, timeout=300)  # a Ray starting on a busy 2-core machine
    sidebar = page.locator('[data-testid="stSidebar"] [data-testid="stSidebarUserContent"]')
    sidebar.evaluate("e => e.parentElement.scrollTo(0, e.parentElement.scrollHeight)")
    page.wait_for_timeout(500)
    return page


@pytest.mark.parametrize("setting", ["off", "on"])
def test_the_ray_section_starts_ray_only_where_the_operator_allows_it(setting):
    sync_api = pytest.importorskip("playwright.sync_api")
    if setting == "on":
        pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'convcov[ray]')")
    shots, errors, started = screenshot_dir(), [], []
    env = {"CONVCOV_RAY_ADDRESS": "", "CONVCOV_RAY_LOCAL": "1" if setting == "on" else "0"}
    try:
        with streamlit_server(env=env, started=started) as base_url, sync_api.sync_playwright() as playwright:
            server = started[0].pid
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = connect_to_ray(base_url, browser, errors)
                sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
                main = page.locator('[data-testid="stMain"]').inner_text()
                others = {pid: c for pid, c in session_processes(server).items() if pid != server}
                if setting == "off":
                    assert "it starts none of its own" in sidebar and "CONVCOV_RAY_LOCAL=1" in sidebar
                    assert "starts no Ray on the server by itself" in sidebar
                    assert "choose this machine to run the sweep here" in main and "Run sweep" not in main
                    assert others == {}  # nothing started
                else:
                    assert "each sweep starts a Ray of its own on this machine (CONVCOV_RAY_LOCAL is on)" in sidebar
                    assert "Runs on the Ray started on this machine for each sweep: 1 node(s)" in main
                    assert others == {}  # the server itself never starts or joins Ray
                errors += [e.inner_text()[:300] for e in page.locator(ERRORS).all()]
                page.screenshot(path=str(shots / f"sweeps_ray_{setting}.png"))
            finally:
                browser.close()
    finally:
        left = stop_what_is_left(started[0].pid) if started else {}
    print(f"screenshot: {shots / f'sweeps_ray_{setting}.png'}")
    assert not left, f"left running after the server stopped: {left}"
    assert not errors, f"problems seen in the browser: {errors}"
