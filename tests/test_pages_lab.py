"""Page tests (AppTest) for the Training Lab and Learned Covariances: a tiny comparison end to end,
cancel mid-run, a second visitor while the server is busy, the learned covariances of the run just
made, "use as init", and every bad checkpoint upload with its own message."""

import io
import re
import time

import pytest
import torch
from safetensors.torch import save as save_safetensors

from convcov_app import background, lab, uploads
from convcov_app.support import present_datasets
from convcov_core import examples, matrix_files
from convcov_core.runs import RunStore
from helpers.files import malicious_checkpoint, tiny_convmixer_state
from helpers.pages import MAX_POLLS, POLL_S, assert_clean, new_app, poll_until_finished, run_page

LAB = "convcov_app/pages/3_Training_Lab.py"
LEARNED = "convcov_app/pages/4_Learned_Covariances.py"


@pytest.fixture(autouse=True)
def no_job_left_running():
    """The job manager is shared by the whole process (st.cache_resource): stop what a test left."""
    yield
    manager = background.job_manager()
    for status in manager.list_jobs():
        if status.running:
            manager.cancel(status.id)
            manager.wait(status.id, 120)


def tiny_lab(at, *, seeds=1, max_steps=3):
    """A ConvMixer-16/2 with 5 x 5 filters on noisy bars, trained filters, a few steps per run."""
    at.selectbox(key="lab_dataset").set_value("noisy-bars")
    at.selectbox(key="lab_model").set_value("custom ConvMixer").run()
    at.select_slider(key="lab_width").set_value(16)
    at.slider(key="lab_depth").set_value(2)
    at.slider(key="lab_k").set_value(5)
    at.number_input(key="lab_patch").set_value(4)
    at.radio(key="lab_filters").set_value("trained")
    at.number_input(key="lab_seeds").set_value(seeds)
    at.number_input(key="lab_max_steps").set_value(max_steps)
    at.run()
    assert_clean(at, "tiny setup")
    return at


def test_lab_default_is_the_frozen_cpu_demo_and_says_what_to_expect():
    at = run_page(LAB, timeout=120)
    assert at.selectbox(key="lab_preset").value == lab.QUICK_CPU
    assert at.info[0].value.endswith(lab.PRESETS[lab.QUICK_CPU].expect)
    assert "Regime: convmixer-64/8, 9 x 9 filters on 14 x 14 maps, 31 steps (1 epoch), mnist5k" in at.info[0].value
    assert (at.number_input(key="lab_seeds").value, at.slider(key="lab_k").value) == (3, 9)
    assert not any("wider than the map" in w.value for w in at.warning)
    assert at.radio(key="lab_filters").value == "frozen at init"
    markdown = " ".join(m.value for m in at.markdown)
    assert "6 runs:** default-frozen, gaussian-frozen × seed(s) 0, 1, 2" in markdown
    assert "this preset took about 27 s" in " ".join(c.value for c in at.caption)
    assert not at.get("progress")


def test_lab_warns_when_the_filters_are_wider_than_the_maps_can_use():
    at = tiny_lab(new_app(LAB, timeout=120).run())
    assert not at.warning
    at.slider(key="lab_k").set_value(15).run()  # 28 x 28 bars, patch 4: 7 x 7 maps use 13 x 13
    assert_clean(at, "k = 15 on 7 x 7 maps")
    assert at.warning[0].value.startswith("The filters are wider than the map: 15 × 15 filters on 7 × 7")
    assert "layers 1-2 see 7 × 7 maps and use only the central 13 × 13 weights" in at.warning[1].value
    assert at.button(key="lab_run").disabled is False  # a warning, not a refusal


def test_lab_says_when_a_model_does_not_take_the_images_and_counts_no_arithmetic_for_it():
    """ConvNeXt-Atto shrinks 28 x 28 digits below its 2 x 2 downsampling: the page says so (a forward
    pass to count its arithmetic raised a RuntimeError, shown as an unexpected error)."""
    at = run_page(LAB, timeout=120)
    at.selectbox(key="lab_model").set_value("timm-convnext-atto").run()
    assert_clean(at, "ConvNeXt-Atto on mnist5k")
    assert "does not fit the 28 × 28 images of mnist5k" in at.warning[-1].value
    assert not [m for m in at.markdown if "TFLOP" in m.value]


@pytest.mark.parametrize("name", list(lab.PRESETS))
def test_each_preset_shows_its_regime_and_says_when_its_filters_are_wider_than_the_map(name):
    examples.add_to_store(RunStore())  # the learned preset's covariances
    at = run_page(LAB, timeout=120)
    at.selectbox(key="lab_preset").set_value(name).run()
    assert_clean(at, name)
    statement, wider = lab.regime_text(lab.preset_setup(name, present_datasets())[0].training)
    assert at.info[0].value == f"**{name}.** {statement} {lab.PRESETS[name].expect}"
    assert [w.value for w in at.warning if "wider than the map" in w.value] == ([wider] if wider else [])


def test_lab_runs_a_tiny_comparison_end_to_end_then_learned_page_opens_its_run():
    at = tiny_lab(new_app(LAB, timeout=120).run())
    assert "Custom settings" in at.caption[0].value
    at.button(key="lab_run").click().run()
    assert_clean(at, "run clicked")
    assert at.button(key="lab_run").disabled
    live = len(at.get("plotly_chart"))
    texts = poll_until_finished(at)
    assert_clean(at, "finished")
    assert live == 2 and texts and texts[0].startswith("Training: ")  # loss and accuracy curves

    verdict = at.info[-1].value  # one seed: a verdict, but not a clear one
    assert "gaussian" in verdict and "default" in verdict
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["default", "gaussian"]
    assert table["Δ vs reference, points [95% interval]"][0] == "reference"
    assert table["verdict"][1] == "needs 2+ seeds"
    saved = [c.value for c in at.caption if "Saved to the run store as comparison #" in c.value]
    assert saved
    comparison_id = int(saved[0].split("#")[1].split(";")[0])
    stored = background.job_manager().store.get_comparison(comparison_id)
    assert list(stored.runs) == ["default", "gaussian"] and stored.status == "ok"
    assert len(at.get("plotly_chart")) == 3  # loss, accuracy, results

    history = at.multiselect(key="lab_history")
    label = next(o for o in history.options if o.startswith(f"comparison #{comparison_id} "))
    history.set_value([label]).run()
    assert_clean(at, "history selected")
    assert len(at.get("download_button")) == 2 and len(at.get("plotly_chart")) == 5

    run_id = stored.runs["gaussian"][0].id
    page = run_page(LEARNED, timeout=120)
    run_label = next(o for o in page.selectbox(key="lc_run").options if o.startswith(f"#{run_id} "))
    page.selectbox(key="lc_run").set_value(run_label).run()
    assert_clean(page, "learned covariances of the run")
    # layer grid, offset profiles, fitted sigma vs depth, learned vs closed form, transfer preview
    assert len(page.get("plotly_chart")) == 5
    assert f"run #{run_id}" in page.markdown[1].value
    page.slider(key="lc_layer").set_value(2).run()
    page.slider(key="lc_new_k").set_value(7)
    page.slider(key="lc_new_depth").set_value(3).run()
    names = [b.proto.label for b in page.get("download_button")]
    assert names == ["Download .npy", "Download .pt"]
    assert "The 3 × 49 × 49 covariances (float64)" in " ".join(c.value for c in page.caption)
    page.button(key="lc_use").click().run()
    assert_clean(page, "use as init")
    assert "Saved as covariance set" in page.success[0].value

    lab_page = new_app(LAB, timeout=120)
    lab_page.session_state["lab_wanted_source"] = page.session_state["lab_wanted_source"]
    lab_page.run()
    lab_page.multiselect(key="lab_inits").set_value(["Gaussian covariance", "Learned covariance"]).run()
    assert_clean(lab_page, "learned init offered")
    assert lab_page.selectbox(key="lab_learned").value == page.session_state["lab_wanted_source"]
    assert "(7 × 7, 3 layers)" in lab_page.selectbox(key="lab_learned").value


def test_lab_cancel_stops_cleanly_and_a_second_visitor_sees_the_busy_server():
    at = tiny_lab(new_app(LAB, timeout=120).run(), seeds=3, max_steps=0)
    at.number_input(key="lab_epochs").set_value(10).run()  # 6 runs of 10 epochs: still running below
    at.button(key="lab_run").click().run()
    for _ in range(MAX_POLLS):
        if at.get("progress") and "images/s" in at.get("progress")[0].proto.text:
            break
        time.sleep(POLL_S)
        at.run()
    assert "Run 1 of 6: default, seed 0 · step" in at.get("progress")[0].proto.text

    other = run_page(LAB, timeout=120)
    assert re.search(r"\(.+; \d+% done, about .+ left\)", other.info[-1].value)  # whose job, how far along
    other.button(key="lab_run").click().run()
    assert any("The server is busy" in w.value for w in other.warning)

    at.button(key="lab.cancel").click().run()
    assert_clean(at, "cancel clicked")
    poll_until_finished(at)
    assert_clean(at, "after cancel")
    shown = [m.value for m in at.warning] + [m.value for m in at.info]
    assert any("Cancelled" in text for text in shown), shown
    assert not any(s.running for s in background.job_manager().list_jobs())


def test_lab_trains_the_runs_together_when_asked():
    at = tiny_lab(new_app(LAB, timeout=120).run(), seeds=3, max_steps=0)
    at.number_input(key="lab_epochs").set_value(10).run()
    assert not at.checkbox(key="lab_ensemble").value  # on the CPU, one after another by default
    at.checkbox(key="lab_ensemble").check().run()
    at.button(key="lab_run").click().run()
    for _ in range(MAX_POLLS):
        if at.get("progress") and "images/s" in at.get("progress")[0].proto.text:
            break
        time.sleep(POLL_S)
        at.run()
    assert "Runs 1–6 of 6, trained together · step" in at.get("progress")[0].proto.text
    at.button(key="lab.cancel").click().run()
    poll_until_finished(at)
    assert_clean(at, "after cancel")


def test_learned_page_warns_when_a_runs_filters_were_wider_than_its_maps():
    from helpers.runs import fake_run

    run = fake_run(k=5)
    run.config = run.config.replace(patch_size=14)  # 2 x 2 maps on 28 x 28 digits
    run_id = background.job_manager().store.save(run)
    at = run_page(LEARNED, timeout=120)
    label = next(o for o in at.selectbox(key="lc_run").options if o.startswith(f"#{run_id} "))
    at.selectbox(key="lc_run").set_value(label).run()
    assert_clean(at, "a run with 2 x 2 maps")
    warning = " ".join(w.value for w in at.warning)
    assert "This run's setup: 2 of 2 depthwise layers" in warning
    assert "central 3 × 3 weights of 5 × 5 filters" in warning


def test_learned_page_trains_a_quick_run_and_shows_its_covariances():
    at = new_app(LEARNED, timeout=120).run()
    at.radio(key="lc_source").set_value("A quick run trained here").run()
    at.selectbox(key="lc_dataset").set_value("noisy-mnist")
    at.select_slider(key="lc_width").set_value(16)
    at.slider(key="lc_depth").set_value(2)
    at.slider(key="lc_k").set_value(3)
    at.number_input(key="lc_patch").set_value(8)
    at.number_input(key="lc_epochs").set_value(1)
    at.run()
    assert "Press **Train**" in at.info[0].value
    at.button(key="lc_train").click().run()
    assert_clean(at, "train clicked")
    assert at.get("progress") and at.button(key="lc_train").disabled
    poll_until_finished(at)
    assert_clean(at, "quick run finished")
    assert "convmixer-16/2 on noisy-mnist, init default" in at.markdown[1].value
    assert len(at.get("plotly_chart")) == 5
    assert any(s.label.startswith("Learned Covariances: convmixer-16/2") and s.state == "done"
               for s in background.job_manager().list_jobs())


@pytest.fixture
def upload_page(monkeypatch):
    def open_with(filename: str, content: bytes, architecture: str | None = None):
        at = new_app(LEARNED, timeout=120).run()
        at.radio(key="lc_source").set_value("An uploaded checkpoint").run()
        if architecture:
            at.selectbox(key="lc_arch").set_value(architecture)
        at.get("file_uploader")[0].set_value((filename, content, "application/octet-stream"))
        return at.run()
    return open_with


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_learned_page_reads_a_good_checkpoint(upload_page):
    _, state = tiny_convmixer_state()
    at = upload_page("mine.safetensors", save_safetensors(state))
    assert_clean(at, "good checkpoint")
    assert "convmixer-8/3" in at.markdown[1].value
    assert len(at.get("plotly_chart")) == 5


def upload_covariances(filename: str, content: bytes):
    at = new_app(LEARNED, timeout=120).run()
    if at.get("plotly_chart"):  # a saved run shown first: leave its sliders off their defaults
        at.slider(key="lc_layer").set_value(2)
        at.slider(key="lc_new_k").set_value(25).run()
    at.radio(key="lc_source").set_value("An uploaded covariance file").run()
    assert "Upload covariances in the sidebar" in at.info[0].value
    at.get("file_uploader")[0].set_value((filename, content, "application/octet-stream"))
    return at.run()


def test_learned_page_reads_back_the_covariances_it_downloads():
    from convcov_core import covariance

    layers = [covariance.gaussian(7, sigma) for sigma in (0.8, 1.4, 2.0)]
    at = upload_covariances("mine-k7-d3.pt", matrix_files.covariance_bytes(layers, "pt"))
    assert_clean(at, "a covariance file")
    assert "mine-k7-d3.pt (a covariance file). 3 depthwise layer(s), 7 × 7 filters." in at.markdown[1].value
    assert len(at.get("plotly_chart")) == 5 and not at.warning
    fitted = at.dataframe[0].value["fitted σ"].tolist()
    assert fitted == pytest.approx([0.8, 1.4, 2.0], abs=0.01)
    assert (at.slider(key="lc_new_k").value, at.slider(key="lc_new_depth").value) == (7, 3)  # its own size
    at.button(key="lc_use").click().run()
    assert "Saved as covariance set 'mine-k7-d3-k7-d3'" in at.success[0].value


def test_learned_page_names_what_is_wrong_with_a_covariance_file():
    import numpy as np

    from convcov_core import covariance

    S = covariance.gaussian(5, 1.0)
    indefinite = [S, S - 0.5 * torch.eye(25, dtype=S.dtype)]
    at = upload_covariances("indefinite.npy", matrix_files.covariance_bytes(indefinite, "npy"))
    assert_clean(at, "an indefinite layer")
    assert "Layer(s) 2 of indefinite.npy are not positive semi-definite" in at.warning[0].value
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 2, 4, 4)))
    at = upload_covariances("odd.npy", buffer.getvalue())
    assert "expected depth x k^2 x k^2 covariances" in at.error[0].value
    at = upload_covariances("pickled.pt", _torch_bytes({"not": "a tensor"}))
    assert at.error and not at.exception


def test_malicious_checkpoint_never_runs_and_is_explained(upload_page, tmp_path):
    marker = tmp_path / "created_by_the_pickle"
    at = upload_page("evil.pt", malicious_checkpoint(marker))
    assert not at.exception
    assert "contains arbitrary Python objects" in at.error[0].value
    assert "was not executed" in at.error[0].value
    assert not marker.exists()


@pytest.mark.parametrize("case, message", [
    ("truncated", "is truncated or damaged"),
    ("empty", "is empty (0 bytes)"),
    ("wrong architecture", "does not fit timm:convnext_atto"),
    ("oversized", "over the 1.0 KiB limit"),
])
def test_each_bad_checkpoint_gets_its_own_message(upload_page, monkeypatch, case, message):
    _, state = tiny_convmixer_state()
    whole = _torch_bytes(state)
    content, architecture = {
        "truncated": (whole[: len(whole) // 2], None),
        "empty": (b"", None),
        "wrong architecture": (whole, "timm ConvNeXt-Atto"),
        "oversized": (whole, None),
    }[case]
    if case == "oversized":
        monkeypatch.setenv("CONVCOV_MAX_CHECKPOINT_MB", str(1 / 1024))
    at = upload_page(f"{case.replace(' ', '_')}.pt", content, architecture)
    assert not at.exception
    assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
    assert not at.get("plotly_chart")


def test_checkpoint_limit_shown_is_the_web_servers_cap_when_lower(monkeypatch):
    get_option = uploads.st.get_option  # the web server's option, 3 MB, through Streamlit's public API
    monkeypatch.delenv("CONVCOV_MAX_CHECKPOINT_MB", raising=False)
    monkeypatch.setattr(uploads.st, "get_option",
                        lambda name: 3 if name == "server.maxUploadSize" else get_option(name))
    at = new_app(LEARNED, timeout=120).run()
    at.radio(key="lc_source").set_value("An uploaded checkpoint").run()
    # the browser counts Streamlit's megabytes in 10^6 bytes (tests/test_browser_uploads.py)
    assert any(c.value.startswith("Up to 3 MB (2.9 MiB).") for c in at.caption), [c.value for c in at.caption]
    assert uploads.upload_limit() == 3_000_000


def test_a_1_by_1_covariance_file_gets_one_clear_message():
    """A 1 x 1 matrix (one pixel's variance): one message naming the file and what is needed, no
    StreamlitValueBelowMinError from the transfer slider that starts at k = 3 (as on the Gallery)."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.ones((1, 1)))
    at = upload_covariances("one.npy", buffer.getvalue())
    assert not at.exception and not at.get("plotly_chart")
    assert [e.value for e in at.error] == [
        "This file cannot be used: one.npy holds covariances of 1 × 1 filters (1 × 1 matrices): filters of at "
        "least 3 × 3 pixels are needed to show, fit or resize a spatial covariance; upload the k² × k² "
        "covariance of k × k filters, e.g. 81 × 81 for 9 × 9 filters."]


def test_lab_keeps_the_visitors_setup_while_they_visit_another_page():
    at = new_app("app.py")
    at.run()
    at.switch_page("convcov_app/pages/3_Training_Lab.py").run()
    assert_clean(at)
    at.number_input(key="lab_seeds").set_value(4)
    at.slider(key="lab_k").set_value(11)
    at.radio(key="lab_filters").set_value(at.radio(key="lab_filters").options[0]).run()
    chosen = (at.radio(key="lab_filters").value, at.number_input(key="lab_seeds").value,
              at.slider(key="lab_k").value)
    at.switch_page("convcov_app/pages/1_Covariance_Explorer.py").run()
    assert_clean(at)
    at.switch_page("convcov_app/pages/3_Training_Lab.py").run()
    assert_clean(at)
    assert (at.radio(key="lab_filters").value, at.number_input(key="lab_seeds").value,
            at.slider(key="lab_k").value) == chosen == (chosen[0], 4, 11)
