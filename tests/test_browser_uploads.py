"""Malicious and broken files through every upload widget, in headless Chromium (one server for the
module): pickles with a __reduce__ payload as .pt / .pth / .bin / .ckpt, the same disguised as
.safetensors and .npy, an object array, truncated files and random bytes. Each gets a clear message
that names the file, no payload runs (it would create a marker folder), no exception reaches the
page, and the widget still reads a good file afterwards.

A screenshot of one refused upload goes to $CONVCOV_SCREENSHOTS or a temporary folder.
"""

import numpy as np
import pytest

from convcov_core import covariance
from helpers.browser import (
    BROWSER_TESTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    collect_errors,
    screenshot_dir,
    streamlit_server,
    wait_until_rendered,
)
from helpers.files import Payload, malicious_checkpoint, npy_bytes, tiny_convmixer_state, torch_bytes

pytestmark = BROWSER_TESTS

WAIT_MS = 90_000
OPEN_S = 300  # Feature Ansatz opens on the bundled example's analysis: minutes on a busy 2-core machine
MATRIX_SUFFIXES = (".npy", ".pt", ".pth", ".safetensors")
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def bad_files(marker) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every malicious or broken file, for any widget."""
    pickled = malicious_checkpoint(marker)
    good = torch_bytes(tiny_convmixer_state()[1])
    rng = np.random.default_rng(0)
    return ([(f"evil{suffix}", pickled) for suffix in (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".npy")]
            + [("objects.npy", npy_bytes(np.array([Payload(str(marker))], dtype=object))),
               ("truncated.pt", good[:len(good) // 2]),
               ("truncated.npy", npy_bytes(np.eye(81))[:3000]),
               ("random.safetensors", rng.bytes(4096)), ("random.bin", rng.bytes(4096)),
               ("random.npy", rng.bytes(4096))])


def radio(page, label: str, option: str) -> None:
    page.locator('[data-testid="stRadio"]').filter(has_text=label).get_by_text(option, exact=True).click()
    wait_until_rendered(page)


def open_learned_fv(page) -> None:
    radio(page, "Filters from", "Learned covariance of a network")
    if page.locator('[data-testid="stRadio"]').filter(has_text="Network").count():
        radio(page, "Network", "An uploaded checkpoint")


#: (page URL path, how to reach the widget, the widget's label, the suffixes it takes, a good file it
#: reads afterwards or another widget that must still respond)
WIDGETS = {
    "gallery covariance": ("Filter_Gallery", None, "Covariance matrix", MATRIX_SUFFIXES,
                           ("closed_form.npy", npy_bytes(covariance.gaussian(9, 2.0).numpy()))),
    "learned checkpoint": ("Learned_Covariances",
                           lambda page: radio(page, "Learned covariances from", "An uploaded checkpoint"),
                           "Checkpoint (state dict)", CHECKPOINT_SUFFIXES,
                           ("tiny.pt", torch_bytes(tiny_convmixer_state()[1]))),
    "learned covariance file": ("Learned_Covariances",
                                lambda page: radio(page, "Learned covariances from",
                                                   "An uploaded covariance file"),
                                "Covariances (depth", MATRIX_SUFFIXES,
                                ("closed_form.npy", npy_bytes(covariance.gaussian(5, 1.0).numpy()))),
    "feature ansatz checkpoint": ("Feature_Ansatz", lambda page: radio(page, "Analyse", "An uploaded checkpoint"),
                                  "Checkpoint (state dict)", CHECKPOINT_SUFFIXES,
                                  lambda page: radio(page, "Analyse", "A small CNN trained here")),
    "frequency view checkpoint": ("Frequency_View", open_learned_fv, "Checkpoint (state dict)",
                                  CHECKPOINT_SUFFIXES, ("tiny.pt", torch_bytes(tiny_convmixer_state()[1]))),
}


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with streamlit_server() as base_url, sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport=VIEWPORT)
            page.goto(base_url, wait_until="domcontentloaded")  # Home: the app's navigation is set up
            wait_until_rendered(page)
            page.close()
            yield chromium, base_url
        finally:
            chromium.close()


def upload(page, label: str, name: str, data: bytes) -> None:
    """Put a file into the uploader labelled `label` and wait for the page to read it."""
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=label).first
    uploader.locator('input[type="file"]').set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])
    uploader.get_by_text(name, exact=True).wait_for(timeout=WAIT_MS)
    wait_until_rendered(page)


def shown(page, testid: str) -> list[str]:
    return [e.inner_text() for e in page.locator(f'[data-testid="{testid}"]').all()]


@pytest.mark.parametrize("widget", list(WIDGETS))
def test_bad_uploads_are_refused_in_the_browser_and_nothing_runs(browser, tmp_path, widget):
    chromium, base_url = browser
    path, reach, label, suffixes, good = WIDGETS[widget]
    marker = tmp_path / "payload_ran"
    page = chromium.new_page(viewport=VIEWPORT)
    page_errors = []
    collect_errors(page, page_errors)
    page.goto(f"{base_url}/{path}", wait_until="domcontentloaded")
    wait_until_rendered(page, timeout=OPEN_S)
    if reach is not None:
        reach(page)
    tried = [(name, data) for name, data in bad_files(marker) if name.endswith(suffixes)]
    assert len(tried) >= 8
    for name, data in tried:
        upload(page, label, name, data)
        errors = shown(page, "stAlertContentError")
        assert any(name in e for e in errors), f"{widget}, {name}: no message names the file: {errors}"
        assert not shown(page, "stException"), f"{widget}, {name}: {shown(page, 'stException')}"
        assert not marker.exists(), f"{widget}, {name}: the payload ran"
        if widget == "gallery covariance" and name == "evil.pt":
            page.locator('[data-testid="stAlertContentError"]').first.scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot_dir() / "upload_refused.png"))
    if callable(good):  # the page still responds
        good(page)
    else:  # the widget still works: a good file is read without a message
        upload(page, label, *good)
    assert not shown(page, "stAlertContentError") and not shown(page, "stException")
    assert not page_errors, f"{widget}: problems in the browser: {page_errors}"
    page.close()


def test_the_stated_upload_limit_is_the_one_the_browser_enforces(browser):
    """server.maxUploadSize is in megabytes that Streamlit's front end counts in 10^6 bytes (off
    Windows): at 1, a file of 1,000,000 bytes reaches the page and one of 1,000,001 is refused by the
    browser, and the caption says 1 MB (it said "MiB": 199 MiB was refused under "up to 200 MiB").
    A second server, with that limit; the module's Chromium."""
    chromium, _ = browser
    with streamlit_server(flags=["--server.maxUploadSize", "1"]) as base_url:
        page = chromium.new_page(viewport=VIEWPORT)
        try:
            page.goto(base_url, wait_until="domcontentloaded")  # Home: the app's navigation is set up
            wait_until_rendered(page)
            page.goto(f"{base_url}/Learned_Covariances", wait_until="domcontentloaded")
            wait_until_rendered(page, timeout=OPEN_S)
            radio(page, "Learned covariances from", "An uploaded checkpoint")
            assert any(c.startswith("Up to 1 MB (1.0 MiB).") for c in shown(page, "stCaptionContainer"))
            uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Checkpoint").first
            uploader.locator('input[type="file"]').set_input_files(
                files=[{"name": "over.pt", "mimeType": "application/octet-stream", "buffer": b"x" * 1_000_001}])
            uploader.get_by_text("File must be 1.0MB or smaller.").wait_for(timeout=WAIT_MS)
            upload(page, "Checkpoint", "exact.pt", b"x" * 1_000_000)
            assert any("exact.pt" in e for e in shown(page, "stAlertContentError"))  # read, and refused by us
        finally:
            page.close()
