"""A live `streamlit run app.py` server and headless Chromium pages that report what went wrong.

Used by tests/test_browser.py; any test that needs the real front end can reuse these.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}

# Console errors that are not the app's fault, each matched by a specific pattern:
HARMLESS_CONSOLE_ERRORS = (
    # Opened at a page URL such as /Filter_Gallery, Streamlit's front end first looks for the
    # server under that path (/Filter_Gallery/_stcore/health and .../host-config), gets a 404,
    # then falls back to the root. Only these two probes below a page path are ignored.
    re.compile(r"status of 404 .*\[https?://[^/\]]+/[^/\]]+/_stcore/(health|host-config)\]$"),
)


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(base_url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    """Poll /_stcore/health until the server answers "ok"; fail early if the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode} before it was healthy")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        time.sleep(0.5)
    raise TimeoutError(f"streamlit at {base_url} was not healthy after {timeout:.0f} s")


@contextlib.contextmanager
def streamlit_server(script: str = "app.py", env: dict | None = None, flags=(), started: list | None = None):
    """Run `python -m streamlit run <script>` headless on a free port (further command-line
    `flags` after ours, as for bin/serve); yield its base URL. `started`, a list, gets the server's
    Popen, and the server then runs in a session of its own, so that session_processes(its pid)
    finds every process it starts, also those reparented when their parent exits."""
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="streamlit-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", *flags],
        cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=started is not None,
    )
    base_url = f"http://127.0.0.1:{port}"
    if started is not None:
        started.append(process)
    try:
        wait_for_health(base_url, process)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        print(f"streamlit server log: {log.name}")


def session_processes(sid: int) -> dict[int, str]:
    """{pid: "name command"} of the processes in session `sid` now (the leader included), from
    /proc: the kernel's name for it (gcs_server, raylet, ...) and its command line's first word."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                name, _, fields = (entry / "stat").read_text().partition(" (")[2].rpartition(")")
                if int(fields.split()[3]) == sid:
                    command = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                    found[int(entry.name)] = f"{name} {command}".strip()
    return found


def stop_what_is_left(sid: int, wait_s: float = 240) -> dict:
    """Wait until no process of session `sid` is left (Ray's agents notice their raylet is gone
    within a few minutes), then kill, by id, those still there; what was left."""
    deadline = time.monotonic() + wait_s
    while session_processes(sid) and time.monotonic() < deadline:
        time.sleep(2)
    left = session_processes(sid)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


@dataclass
class PageReport:
    """What a visit saw: console errors, uncaught page errors, and error elements on screen."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    shown_errors: list[str] = field(default_factory=list)
    navigation: str = ""
    heading: str = ""  # the page's title (its first h1)

    def problems(self) -> list[str]:
        wrong_nav = [] if self.navigation.startswith("Home") else [
            f"sidebar navigation does not start with Home: {self.navigation[:80]!r}"]
        return ([f"console: {m}" for m in self.console_errors]
                + [f"page error: {m}" for m in self.page_errors]
                + [f"on screen: {m}" for m in self.shown_errors] + wrong_nav)


def console_text(msg) -> str:
    """A console message with the URL it is about (a failed load names no URL in its text)."""
    where = (msg.location or {}).get("url", "")
    return f"{msg.text} [{where}]" if where else msg.text


def is_harmless(message: str) -> bool:
    return any(pattern.search(message) for pattern in HARMLESS_CONSOLE_ERRORS)


#: pytestmark of a module of browser tests: marked `browser`, skipped where Chromium is missing.
BROWSER_TESTS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


def collect_errors(page, errors: list) -> None:
    """From now on, append the page's console errors (the harmless ones left out) and uncaught
    page errors to `errors`."""
    page.on("console", lambda msg: msg.type == "error" and not is_harmless(console_text(msg))
            and errors.append(console_text(msg)))
    page.on("pageerror", lambda err: errors.append(str(err)))


RUNNING = ('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"], '
           '[data-testid="stSkeleton"], [data-testid="stSpinner"]')
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def wait_until_rendered(page, timeout: float = 90) -> None:
    """Wait until the script has finished (no running indicator, skeleton or spinner for 1.5 s)
    and every plotly chart on the page has drawn its SVG."""
    page.wait_for_selector('[data-testid="stMainBlockContainer"]', timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        charts = page.locator('[data-testid="stPlotlyChart"]').count()
        drawn = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot .main-svg').count()
        busy = page.locator(RUNNING).count() > 0 or drawn < charts
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 1.5:
            return
        page.wait_for_timeout(250)
    raise TimeoutError(f"{page.url} did not finish rendering in {timeout:.0f} s")


def visit(browser_context, url: str, screenshot_dir: Path, name: str) -> PageReport:
    """Open url in a new tab (a new session, as a visitor following a link), wait for it to render,
    collect errors and the sidebar navigation, save screenshots.

    Saves `<name>.png` (the 1280 x 800 window, what a visitor sees first) and `<name>_full.png`
    (the whole page: the window is stretched to the height of the scrolling main area).
    """
    report = PageReport(url)
    page = browser_context.new_page()
    page.on("console", lambda msg: msg.type == "error" and not is_harmless(console_text(msg))
            and report.console_errors.append(console_text(msg)))
    page.on("pageerror", lambda err: report.page_errors.append(str(err)))
    page.goto(url, wait_until="domcontentloaded")
    wait_until_rendered(page)
    report.shown_errors = [e.inner_text()[:500] for e in page.locator(ERRORS).all()]
    nav = page.locator('[data-testid="stSidebarNav"]')
    report.navigation = " | ".join(nav.inner_text().split()) if nav.count() else ""
    title = page.locator('[data-testid="stMain"] h1')
    report.heading = title.first.inner_text().strip() if title.count() else ""
    page.screenshot(path=str(screenshot_dir / f"{name}.png"))
    screenshot_whole_page(page, screenshot_dir / f"{name}_full.png")
    page.close()
    return report


def screenshot_whole_page(page, path: Path, max_height: int = 8000) -> None:
    """Stretch the window to the height of the scrolling main area (at most max_height), wait for
    the page to render again, and save the whole page."""
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], "
        "[data-testid=\"stAppViewContainer\"], section')].map(e => e.scrollHeight), 800)")
    page.set_viewport_size({"width": page.viewport_size["width"], "height": min(int(height), max_height)})
    wait_until_rendered(page)
    page.screenshot(path=str(path), full_page=True)


def screenshot_dir() -> Path:
    """$CONVCOV_SCREENSHOTS, or a new temporary folder."""
    target = os.environ.get("CONVCOV_SCREENSHOTS")
    path = Path(target) if target else Path(tempfile.mkdtemp(prefix="convcov-screenshots-"))
    path.mkdir(parents=True, exist_ok=True)
    return path
