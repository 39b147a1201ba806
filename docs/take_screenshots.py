"""Take the README's screenshots (docs/screenshots/) from a live app in headless Chromium.

    python docs/take_screenshots.py                    # all of them: about 5 minutes on 2 CPU cores
    python docs/take_screenshots.py home frequency     # some of them (names below)
    python docs/take_screenshots.py --out /tmp/shots   # somewhere else
    python docs/take_screenshots.py --extremes --out /tmp/extremes   # each page's widgets at their ends

The app runs on a fresh run store, so the pages show what a first-time visitor sees: the bundled
example network, a small CNN trained on the Feature Ansatz page, the Training Lab's learned preset run
to the end. Full-page shots stretch the window to the page's height first.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' server and Chromium helpers
from convcov_core import covariance  # noqa: E402
from helpers.browser import CHROMIUM, CHROMIUM_ARGS, screenshot_whole_page, streamlit_server, wait_until_rendered  # noqa: E402

WIDTH = 1280  # window width (pixels)


def open_page(browser, base: str, path: str, width: int, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{base}/{path}")
    wait_until_rendered(page)
    return page


def home(browser, base, out):
    open_page(browser, base, "", WIDTH).screenshot(path=str(out / "home.png"))


def whole_page(path: str, name: str):
    """A shot of the whole page at `path` as it opens, saved as `name`."""
    def shot(browser, base, out):
        screenshot_whole_page(open_page(browser, base, path, WIDTH), out / name)
    return shot


explorer = whole_page("Covariance_Explorer", "covariance_explorer.png")
gallery = whole_page("Filter_Gallery", "filter_gallery.png")
learned = whole_page("Learned_Covariances", "4_learned_covariances.png")
claims = whole_page("Paper_Claims", "7_paper_claims.png")


def gallery_upload(browser, base, out):
    """A 7 x 7 Gaussian covariance with symmetric noise (not PSD), uploaded and projected."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.08, (49, 49))
    matrix = covariance.gaussian(7, 1.5).numpy() + (noise + noise.T) / 2
    upload = Path(tempfile.mkdtemp()) / "my_cov.npy"
    np.save(upload, matrix)
    page = open_page(browser, base, "Filter_Gallery", WIDTH, 1000)
    page.locator('[data-testid="stSidebar"] input[type="file"]').set_input_files(str(upload))
    wait_until_rendered(page)
    page.get_by_text("Project it onto the nearest PSD matrix").click()
    wait_until_rendered(page)
    page.locator('[data-testid="stSidebarUserContent"]').evaluate("e => e.parentElement.scrollTo(0, 1e6)")
    page.screenshot(path=str(out / "filter_gallery_upload.png"))


def gallery_peers(browser, base, out):
    """The peer schemes beside the default: one shot with the Gaussian covariance, the Gaussian bump
    and the impulse, one with box-3, delta-orthogonal and all-pass; "What these schemes draw" open."""
    for name, drop, add in (("filter_gallery_peers.png", [], ["Gaussian bump", "Impulse"]),
                            ("filter_gallery_peers_2.png", ["Gaussian covariance"],
                             ["Box of 3 pixels", "Delta-orthogonal", "All-pass"])):
        page = open_page(browser, base, "Filter_Gallery", WIDTH)
        select = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first
        for label in drop:
            select.locator(f'button[aria-label="Remove {label}"]').first.click()
            wait_until_rendered(page)
        for label in add:
            select.locator("input").click()
            page.keyboard.type(label)
            page.get_by_role("option", name=label, exact=True).click()
            page.keyboard.press("Escape")
            wait_until_rendered(page, timeout=180)
        page.locator('[data-testid="stExpander"] summary').first.click()
        wait_until_rendered(page)
        screenshot_whole_page(page, out / name)


def gallery_families(browser, base, out):
    """The closed-form families side by side (Gaussian, Laplace, Matérn 3/2, rational quadratic), the
    default dropped; "What these schemes draw" open."""
    page = open_page(browser, base, "Filter_Gallery", WIDTH)
    select = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first
    select.locator('button[aria-label="Remove PyTorch default (uniform)"]').first.click()
    wait_until_rendered(page)
    pick_schemes(page, ["Laplace covariance", "Matérn 3/2 covariance", "Rational quadratic covariance"])
    page.locator('[data-testid="stExpander"] summary').first.click()
    wait_until_rendered(page)
    screenshot_whole_page(page, out / "filter_gallery_families.png")


def lab(browser, base, out):
    open_page(browser, base, "Training_Lab", WIDTH).screenshot(path=str(out / "3_training_lab.png"))


def lab_peers(browser, base, out):
    """The Lab with the peer-init preset picked: Gaussian vs impulse vs default, frozen filters, and its
    measured numbers in the preset's text."""
    page = open_page(browser, base, "Training_Lab", WIDTH)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="Frozen filters: Gaussian vs impulse vs default").click()
    wait_until_rendered(page)
    page.screenshot(path=str(out / "3_training_lab_peers.png"))


def finished_lab_preset(browser, base, preset: str):
    """The Lab with `preset` picked and run to its results (minutes on 2 cores)."""
    page = open_page(browser, base, "Training_Lab", WIDTH)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name=preset).click()
    wait_until_rendered(page)
    page.get_by_role("button", name="Run comparison").click()
    page.get_by_role("heading", name="Results").wait_for(timeout=15 * 60 * 1000)
    wait_until_rendered(page)
    return page


def lab_learned(browser, base, out):
    """The learned-vs-Gaussian-vs-default preset, run to its results (about 3 minutes on 2 cores)."""
    page = finished_lab_preset(browser, base, "Frozen filters: learned vs Gaussian vs default")
    page.get_by_text("Raw eval-mode accuracy: BatchNorm statistics as training left them").click()
    wait_until_rendered(page)
    page.get_by_role("heading", name="Results").scroll_into_view_if_needed()
    page.screenshot(path=str(out / "3_training_lab_learned.png"))


def lab_niff(browser, base, out):
    """The NIFF preset (seed 002), run to its results (about a minute on 2 quiet cores)."""
    from convcov_app.lab import NIFF_TRAINED

    page = finished_lab_preset(browser, base, NIFF_TRAINED)
    page.get_by_role("heading", name="Results").scroll_into_view_if_needed()
    page.screenshot(path=str(out / "3_training_lab_niff.png"))


def learned_niff(browser, base, out):
    """Learned Covariances of a NIFF-ConvMixer-64/8 run: the Lab's NIFF preset's, or, in a store
    without one, a run of it trained here first (seed 0)."""
    from convcov_app import lab as lab_presets
    from convcov_core import runs, train

    store = runs.RunStore()
    if not any(s.model.endswith("-niff") for s in store.list()):
        store.save(train.train(lab_presets.PRESETS[lab_presets.NIFF_TRAINED].setup.training), name="NIFF")
    page = open_page(browser, base, "Learned_Covariances", WIDTH)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').nth(0).click()
    page.get_by_role("option").filter(has_text="convmixer-64/8-niff").first.click()
    wait_until_rendered(page)
    screenshot_whole_page(page, out / "4_learned_covariances_niff.png")


def learned_attention(browser, base, out):
    """The attention view of the small ViT's mimetic run (docs/results.md), or, in a store without a
    ViT run, of one trained here first: the Lab's ViT preset, mimetic init, 60 steps."""
    from convcov_app import lab as lab_presets
    from convcov_core import attention, runs, train

    store = runs.RunStore()
    if not any(s.has_weights and attention.has_attention(s.model) for s in store.list()):
        config = lab_presets.PRESETS[lab_presets.VIT_MIMETIC].setup.training
        store.save(train.train(config.replace(init="mimetic", max_steps=60, keep_state_dict=True)),
                   name="ViT, 60 steps")
    page = open_page(browser, base, "Learned_Covariances", WIDTH)
    page.get_by_text("Attention of a saved ViT run").click()
    wait_until_rendered(page)
    run = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    run.click()
    page.get_by_role("option", name="mimetic init").first.click()
    wait_until_rendered(page)
    screenshot_whole_page(page, out / "4_learned_attention.png")


def trained_feature_ansatz(browser, base):
    """The Feature Ansatz page once its small CNN is trained and analysed (until then the page shows
    the bundled ConvMixer's analysis, so its headings alone do not say the training is over)."""
    page = open_page(browser, base, "Feature_Ansatz", WIDTH)
    page.get_by_role("button", name="Train").click()
    cancel = page.get_by_role("button", name="Cancel")  # shown while the job runs
    cancel.wait_for(timeout=60_000)
    cancel.wait_for(state="detached", timeout=5 * 60 * 1000)
    page.get_by_text(re.compile(r"Model: run #\d+: cnn-")).first.wait_for(timeout=5 * 60 * 1000)
    wait_until_rendered(page)
    return page


def feature_ansatz(browser, base, out):
    screenshot_whole_page(trained_feature_ansatz(browser, base), out / "5_feature_ansatz.png")


def feature_ansatz_rfm(browser, base, out):
    """The Feature Ansatz page's ConvRFM section: the measured sweep and a ConvRFM fitted beside the CNN."""
    page = trained_feature_ansatz(browser, base)
    page.get_by_text("Show ConvRFM").click()
    wait_until_rendered(page)
    page.get_by_role("button", name="Fit ConvRFM").click()
    page.get_by_text("ConvRFM: test accuracy").wait_for(timeout=5 * 60 * 1000)
    page.set_viewport_size({"width": WIDTH, "height": 2000})
    wait_until_rendered(page)
    page.get_by_text("ConvRFM: the same features").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)
    page.screenshot(path=str(out / "5_feature_ansatz_convrfm.png"))


def frequency(browser, base, out):
    page = open_page(browser, base, "Frequency_View", WIDTH)
    page.get_by_text("Trained filters of a network").click()
    wait_until_rendered(page)
    screenshot_whole_page(page, out / "6_frequency_view.png")


def set_slider(page, label: str, key: str) -> None:
    """Move the slider labelled `label` to one end: key "Home" (smallest) or "End" (largest)."""
    slider = page.locator(f'input[type="range"][aria-label="{label}"]').first
    slider.wait_for(state="attached", timeout=300_000)  # a page's first visit can take minutes
    slider.focus()
    page.keyboard.press(key)
    wait_until_rendered(page, timeout=300)


def pick_schemes(page, labels_to_add: list[str]) -> None:
    select = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first
    for label in labels_to_add:
        select.locator("input").click(timeout=300_000)  # a busy server can take minutes
        page.keyboard.type(label)
        page.get_by_role("option", name=label, exact=True).click(timeout=60_000)
        page.keyboard.press("Escape")
        wait_until_rendered(page, timeout=300)


def explorer_extremes(browser, base, out):
    """The Explorer at k = 3 and at its largest k, each at the smallest and largest σ, with the
    deepest, widest depth schedule."""
    for k_end in ("Home", "End"):
        for sigma_end in ("Home", "End"):
            page = open_page(browser, base, "Covariance_Explorer", WIDTH)
            set_slider(page, "Kernel size k", k_end)
            set_slider(page, "σ (pixels, log scale)", sigma_end)
            set_slider(page, "σ_first (layer 1)", "Home")
            set_slider(page, "σ_last (last layer)", "End")
            set_slider(page, "Depth L (layers)", "End")
            screenshot_whole_page(page, out / f"explorer_k{k_end.lower()}_sigma{sigma_end.lower()}.png")
            page.close()


def gallery_extremes(browser, base, out):
    """Six schemes side by side at k = 15 and k = 3, with 64 filters and with one."""
    for k_end, n_end in (("End", "End"), ("Home", "Home")):
        page = open_page(browser, base, "Filter_Gallery", WIDTH)
        pick_schemes(page, ["Gaussian bump", "Impulse", "Box of 3 pixels", "All-pass"])
        set_slider(page, "Kernel size k", k_end)
        set_slider(page, "Filters shown (N)", n_end)
        screenshot_whole_page(page, out / f"gallery_six_k{k_end.lower()}_n{n_end.lower()}.png")
        page.close()


def learned_extremes(browser, base, out):
    """The bundled example's covariances, its last layer, transferred to k' = 15 and to 3."""
    for end in ("End", "Home"):
        page = open_page(browser, base, "Learned_Covariances", WIDTH)
        set_slider(page, "Layer", end)
        set_slider(page, "Kernel size k′", end)
        screenshot_whole_page(page, out / f"learned_{end.lower()}.png")
        page.close()


def frequency_extremes(browser, base, out):
    """The closed form's spectra at the smallest and largest σ and kernel size."""
    for end in ("Home", "End"):
        page = open_page(browser, base, "Frequency_View", WIDTH)
        set_slider(page, "Kernel size k", end)
        set_slider(page, "σ of the closed form (pixels)", end)
        screenshot_whole_page(page, out / f"frequency_{end.lower()}.png")
        page.close()


EXTREMES = {"explorer_extremes": explorer_extremes, "gallery_extremes": gallery_extremes,
            "learned_extremes": learned_extremes, "frequency_extremes": frequency_extremes}

SHOTS = {"home": home, "explorer": explorer, "gallery": gallery, "gallery_upload": gallery_upload,
         "gallery_peers": gallery_peers, "gallery_families": gallery_families, "lab": lab, "lab_peers": lab_peers,
         "lab_learned": lab_learned,
         "lab_niff": lab_niff, "learned": learned, "learned_niff": learned_niff, "learned_attention": learned_attention,
         "feature_ansatz": feature_ansatz,
         "feature_ansatz_rfm": feature_ansatz_rfm, "frequency": frequency, "claims": claims,
         **EXTREMES}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shots", nargs="*", metavar="SHOT",
                        help=f"which ones (default: all): {', '.join(SHOTS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--extremes", action="store_true",
                        help=f"all the shots at the widgets' ends ({', '.join(EXTREMES)}), not the README's")
    args = parser.parse_args(argv)
    unknown = [name for name in args.shots if name not in SHOTS]
    if unknown:
        parser.error(f"unknown screenshot(s) {', '.join(unknown)}; choose from {', '.join(SHOTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    home_dir = tempfile.mkdtemp(prefix="convcov-screenshots-")
    os.environ["CONVCOV_HOME"] = home_dir  # shots that save a run write to the app's store
    with streamlit_server(env={"CONVCOV_HOME": home_dir}) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        default = EXTREMES if args.extremes else [name for name in SHOTS if name not in EXTREMES]
        for name in args.shots or default:
            SHOTS[name](browser, base, args.out)
            print(f"{name}: done", flush=True)
        browser.close()
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
