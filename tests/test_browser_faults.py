"""Faults a real `streamlit run app.py` server meets, seen in headless Chromium.

The server killed with SIGKILL in the middle of a Training Lab comparison: the run store keeps exactly
the runs that had finished, no training process is left, and the restarted server shows the job as
interrupted with those runs; Resume trains only the rest, into the same comparison.

A Ray cluster whose GCS is killed (SIGKILL) in the middle of a page-started Ray sweep: the server goes
on answering, the Sweeps page shows the sweep as interrupted with Resume, and no process of the
server's (a Ray driver or any other) is left once it stops.
"""

import os
import re
import signal
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from helpers.browser import (
    BROWSER_TESTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ERRORS,
    VIEWPORT,
    collect_errors,
    session_processes,
    stop_what_is_left,
    streamlit_server,
    wait_until_rendered,
)
from helpers.lab_browser import set_up_tiny_run, type_number
from helpers.sweeps_browser import set_up_tiny_grid
from helpers.waits import wait_for

pytestmark = BROWSER_TESTS

WAIT_S = 300  # a busy 2-core machine
#: The Lab's comparison: 2 variants x 2 seeds of 3 epochs (45 steps, a few seconds alone, much longer in
#: a server drawing live curves on a busy machine), in this order.
RUN_ORDER = [("default", 0), ("gaussian", 0), ("default", 1), ("gaussian", 1)]
LAB_ENV = {"CONVCOV_REFRESH_S": "1", "CONVCOV_MAX_JOB_SAMPLES": "10000000"}
TRIALS_SQL = "SELECT id FROM runs WHERE name = 'sweep sweep-1'"


@pytest.fixture(scope="module")
def chromium():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def store_path() -> Path:
    return Path(os.environ["CONVCOV_HOME"]) / "runs.db"


def query(sql: str) -> list:
    """Rows of `sql` on the run store; none while the store or its table does not exist yet."""
    if not store_path().exists():
        return []
    try:
        with sqlite3.connect(store_path()) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def open_page(chromium, base_url: str, path: str, errors: list):
    """A new visitor on a page (Home first, so the app's navigation is set up)."""
    page = chromium.new_context(viewport=VIEWPORT).new_page()
    collect_errors(page, errors)
    page.goto(base_url, wait_until="domcontentloaded")
    wait_until_rendered(page)
    page.goto(f"{base_url}/{path}", wait_until="domcontentloaded")
    wait_until_rendered(page)
    return page


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def kill_session(process) -> dict:
    """SIGKILL to every process of the server's session (it leads it); what is left after a while."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(60)
    return stop_what_is_left(process.pid, 60)


def healthy(base_url: str) -> bool:
    with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=10) as response:
        return response.read().strip() == b"ok"


def test_a_server_killed_mid_comparison_keeps_its_finished_runs_and_resume_trains_only_the_rest(chromium):
    errors, first, second = [], [], []
    runs_sql = "SELECT id, variant, seed, status, comparison_id FROM runs WHERE comparison_id IS NOT NULL ORDER BY id"
    with streamlit_server(env=LAB_ENV, started=first) as base_url:
        page = open_page(chromium, base_url, "Training_Lab", errors)
        set_up_tiny_run(page, epochs=3)
        type_number(page, "Seeds", 2)
        page.get_by_role("button", name="Run comparison").click()
        wait_for(lambda: query(runs_sql), "a first run in the store", WAIT_S)
        page.context.close()  # the tab would only report the server's end
        left = kill_session(first[0])
    assert left == {}, f"left running after the server was killed: {left}"
    kept = query(runs_sql)
    assert 1 <= len(kept) < len(RUN_ORDER), kept
    assert [(variant, seed) for _, variant, seed, _, _ in kept] == RUN_ORDER[:len(kept)]
    assert {status for *_, status, _ in kept} == {"ok"} and len({row[4] for row in kept}) == 1
    comparison = kept[0][4]
    assert query("SELECT id, status FROM comparisons") == [(comparison, "running")]
    n_left = len(RUN_ORDER) - len(kept)

    with streamlit_server(env=LAB_ENV, started=second) as base_url:
        page = open_page(chromium, base_url, "Training_Lab", errors)
        text = main_text(page)
        assert "Interrupted: compare default, gaussian on noisy-bars" in text
        assert f"(comparison #{comparison}, started" in text and f"{len(kept)} of 4 runs finished and saved" in text
        assert f"Comparison #{comparison}:" in text and f"(Interrupted: {len(kept)} of 4 runs finished.)" in text
        page.get_by_role("button", name=f"Resume: run the {n_left} left").click()
        page.wait_for_selector('[data-testid="stProgress"]', timeout=WAIT_S * 1000)
        page.wait_for_selector('[data-testid="stProgress"]', state="detached", timeout=WAIT_S * 1000)
        wait_until_rendered(page)
        text = main_text(page)
        assert f"Saved to the run store as comparison #{comparison}" in text and "Interrupted:" not in text
        errors += [e.inner_text()[:300] for e in page.locator(ERRORS).all()]
    after = query(runs_sql)
    assert [(variant, seed) for _, variant, seed, _, _ in after] == RUN_ORDER
    assert after[:len(kept)] == kept and {row[4] for row in after} == {comparison}
    assert query("SELECT id, status FROM comparisons") == [(comparison, "ok")]
    assert query("SELECT state FROM jobs") == [("done",)]
    assert stop_what_is_left(second[0].pid, 60) == {}
    assert not errors, f"problems seen in the browser: {errors}"


def test_a_ray_cluster_losing_its_gcs_interrupts_the_sweep_and_not_the_server(chromium):
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'convcov[ray]')")
    from helpers.ray_cluster import ray_cluster

    errors, started = [], []
    with ray_cluster(nodes=1) as (address, nodes):
        # Ray ends a driver whose GCS stays away this long (default 60 s)
        env = {"CONVCOV_REFRESH_S": "0.5", "CONVCOV_RAY_ADDRESS": address,
               "RAY_gcs_rpc_server_reconnect_timeout_s": "10"}
        try:
            with streamlit_server(env=env, started=started) as base_url:
                page = open_page(chromium, base_url, "Sweeps", errors)
                set_up_tiny_grid(page, steps=40)
                page.locator('[data-testid="stSidebar"]').get_by_text("a Ray cluster", exact=True).click()
                wait_until_rendered(page)
                page.get_by_role("button", name="Connect").click()
                wait_until_rendered(page, timeout=WAIT_S)
                assert f"Runs on the Ray at {address}: 1 node(s), 1 CPU(s)" in main_text(page)
                page.get_by_role("button", name="Run sweep").click()
                wait_for(lambda: query(TRIALS_SQL), "a first trial in the store", WAIT_S)
                [gcs] = [pid for pid, name in session_processes(nodes[0].pid).items() if name.startswith("gcs_server")]
                os.kill(gcs, signal.SIGKILL)
                page.get_by_text("The sweep was interrupted").wait_for(timeout=WAIT_S * 1000)
                wait_until_rendered(page)
                assert healthy(base_url)
                text = main_text(page)
                assert "ended before it had finished" in text or "Ray failed under the sweep" in text, text
                resume = page.get_by_role("button", name=re.compile(r"Resume: run the \d+ trial\(s\) left"))
                assert resume.count() == 1
                n_stored = len(query(TRIALS_SQL))
                assert 1 <= n_stored < 16 and f"run the {16 - n_stored} trial(s) left" in resume.inner_text()
                errors += [e.inner_text()[:300] for e in page.locator(ERRORS).all()]
        finally:
            left = stop_what_is_left(started[0].pid) if started else {}
    assert left == {}, f"left running after the server stopped: {left}"
    assert not errors, f"problems seen in the browser: {errors}"
