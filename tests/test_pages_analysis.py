"""Page tests (AppTest) for the Feature Ansatz and Frequency View pages: default render, widgets at
their extremes, a tiny training run end to end, cancelling it, and saved runs as sources."""

import time

import pytest
import streamlit as st
import torch

from convcov_app import labels
from convcov_core import runs, train
from helpers.pages import assert_clean, check_widget_extremes, run_page

FEATURE = "convcov_app/pages/5_Feature_Ansatz.py"
FREQUENCY = "convcov_app/pages/6_Frequency_View.py"
TINY = {"n_train": 64, "n_test": 16, "image_size": 12, "bar_size": 4}


@pytest.fixture(scope="module")
def run_store(tmp_path_factory):
    """A private run store: a tiny ConvMixer run saved without weights, one with frozen filters,
    then one with its weights (the newest, so the pages pick it first)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVCOV_HOME", str(tmp_path_factory.mktemp("analysis_runs")))
        config = train.TrainConfig(dataset="noisy-bars", dataset_params=TINY, model="convmixer-8/2",
                                   kernel_size=5, patch_size=2, epochs=1, batch_size=16)
        store = runs.RunStore()
        store.save(train.train(config), name="no weights")
        store.save(train.train(config.replace(freeze_filters=True)), name="frozen")
        store.save(train.train(config.replace(keep_state_dict=True)), name="tiny")
        st.cache_data.clear()  # the pages cache the run list
        yield store
    st.cache_data.clear()


def wait_for(at, done, *, limit_s: float = 120):
    """Rerun the page (as the progress fragment's timer would) until done(at) or the limit."""
    deadline = time.monotonic() + limit_s
    while not done(at):
        assert time.monotonic() < deadline, "the page did not get there in time"
        time.sleep(0.3)
        at.run()
        assert_clean(at, "while waiting for the training job")
    return at


def charts(at) -> int:
    return len(at.get("plotly_chart"))


# ---------------------------------------------------------------------------------------------
# Frequency View


def test_frequency_default_shows_spectrum_profile_sizes_and_sigma_curve():
    at = run_page(FREQUENCY)
    assert charts(at) == 4
    assert len(at.caption) >= 4  # one sentence under each figure
    options = at.radio(key="fv_source").options
    assert options == list(labels.frequency_sources()) and options[0] == "Gaussian covariance (σ)"
    assert options[-3:] == ["PyTorch default (uniform)", "Learned covariance of a network",
                            "Trained filters of a network"]
    at.radio(key="fv_source").set_value("Trained filters of a network").run()  # no saved run: uploads only
    assert at.radio(key="fv_network").options == ["An uploaded checkpoint"]
    assert "Upload a checkpoint in the sidebar" in at.info[0].value and charts(at) == 0


def test_frequency_widgets_at_extremes():
    assert check_widget_extremes(FREQUENCY, timeout=60) >= 10


# ---------------------------------------------------------------------------------------------
# Feature Ansatz


def test_feature_default_render_asks_to_train():
    at = run_page(FEATURE)
    assert charts(at) == 0
    assert "Press **Train**" in at.info[0].value
    assert at.radio(key="fa_source").options == ["A small CNN trained here", "An uploaded checkpoint"]


def test_feature_widgets_at_extremes_before_training():
    # the Train button starts a real job; the tiny-training test below clicks it
    assert check_widget_extremes(FEATURE, skip=("fa_train",)) >= 20


def tiny_training(at, layers: int):
    """Set a tiny CNN (noisy-bars, 8 channels, 3 x 3, one epoch, 16 AGOP images) and press Train."""
    tiny_settings(at, layers)
    at.button(key="fa_train").click().run()
    assert_clean(at, "after pressing Train")


def tiny_settings(at, layers: int):
    at.selectbox(key="fa_cnn_dataset").set_value("noisy-bars")
    at.slider(key="fa_layers").set_value(layers)
    at.select_slider(key="fa_width").set_value(8)
    at.radio(key="fa_kernel").set_value("3 × 3")
    at.slider(key="fa_epochs").set_value(1)
    at.select_slider(key="fa_n_images").set_value(16)
    at.run()


def test_feature_tiny_training_end_to_end_and_analysis_widgets():
    at = run_page(FEATURE, timeout=60)
    tiny_training(at, layers=1)  # one layer: the edge case (deeper models: the saved-run test)
    wait_for(at, lambda at: charts(at) == 4)
    table = at.dataframe[0].value
    assert list(table["layer"]) == ["block1.0"]
    assert table["r trained"].between(-1, 1).all() and table["r at init"].between(-1, 1).all()
    assert "trained here on noisy-bars" in at.markdown[1].value
    assert not [s for s in at.slider if s.key == "fa_map_layers"]  # nothing to choose with one layer
    # each analysis widget at the end of its range that the default does not already show
    for kind, key, value in (("radio", "fa_which", "at initialization"), ("radio", "fa_operator", "CNFM"),
                             ("slider", "fa_n_vectors", 16), ("slider", "fa_n_vectors", 1),
                             ("number_input", "fa_image", 15), ("selectbox", "fa_picture", "rocket"),
                             ("radio", "fa_outputs", "the predicted class")):
        getattr(at, kind)(key=key).set_value(value).run()
        assert_clean(at, f"{key} = {value!r}")
        assert charts(at) == 4
    # the model trained here was saved: a reload offers it as a saved run, rebuilt with its init
    assert at.markdown[1].value.startswith("**Model:** run #")  # saved, and says under which id
    run_label = "feature-ansatz: cnn-8 on noisy-bars, k = 3, small-normal init"
    reloaded = run_page(FEATURE, timeout=60)
    reloaded.radio(key="fa_source").set_value("A saved run (weights needed)").run()
    assert run_label in reloaded.selectbox(key="fa_run").value
    reloaded.select_slider(key="fa_n_images").set_value(16).run()
    assert_clean(reloaded, "the saved CNN")
    assert charts(reloaded) == 4 and list(reloaded.dataframe[0].value["layer"]) == ["block1.0"]
    # a new visitor who sets the same CNN sees the saved one at once, with a word on where it is from
    again = run_page(FEATURE, timeout=60)
    tiny_settings(again, layers=1)
    assert_clean(again, "the same settings in a new session")
    assert charts(again) == 4 and not again.info  # analysed at once: nothing asks to train
    assert list(again.dataframe[0].value["layer"]) == ["block1.0"]
    again.slider(key="fa_epochs").set_value(2).run()  # settings nobody trained: press Train again
    assert "Press **Train**" in again.info[0].value and charts(again) == 0


def test_feature_training_can_be_cancelled():
    at = run_page(FEATURE, timeout=60)
    at.slider(key="fa_epochs").set_value(10)  # long enough to still be running when cancelled
    at.run()
    at.button(key="fa_train").click().run()
    wait_for(at, lambda at: any(b.key == "feature_ansatz.cancel" for b in at.button))
    at.button(key="feature_ansatz.cancel").click().run()
    wait_for(at, lambda at: any("cancelled" in i.value for i in at.info))
    assert charts(at) == 0
    assert not at.button(key="fa_train").disabled


# ---------------------------------------------------------------------------------------------
# Saved runs as sources (last: the module's run store exists from the first of these on)


def test_frequency_saved_run_sources(run_store):
    at = run_page(FREQUENCY)
    for source in ("Learned covariance of a network", "Trained filters of a network"):
        at.radio(key="fv_source").set_value(source).run()
        assert_clean(at, source)
        assert charts(at) == 4
        assert not [s for s in at.slider if s.key == "fv_kernel_size"]  # the run's own k
        assert any("Diamonds" in c.value for c in at.caption)
        offered = at.selectbox(key="fv_run").options
        assert not [label for label in offered if "frozen" in label]
        # trained filters: only the run with weights (a newer run without them was picked and failed)
        assert len(offered) == (2 if source.startswith("Learned") else 1), offered


def test_feature_saved_run(run_store):
    at = run_page(FEATURE, timeout=60)
    at.radio(key="fa_source").set_value("A saved run (weights needed)").run()
    at.select_slider(key="fa_n_images").set_value(16).run()
    assert_clean(at, "saved run")
    assert charts(at) == 4
    layers = at.selectbox(key="fa_layer").options
    assert at.selectbox(key="fa_layer").value == "blocks.0.0.fn.0"  # the first depthwise layer, not the stem
    for layer in layers:
        at.selectbox(key="fa_layer").set_value(layer).run()
        assert_clean(at, f"layer {layer}")
    for value in (1, 4):  # stem, depthwise, pointwise, depthwise
        at.slider(key="fa_map_layers").set_value(value).run()
        assert_clean(at, f"{value} feature-map layers")


def test_feature_lists_only_saved_runs_that_kept_their_weights(run_store):
    at = run_page(FEATURE, timeout=60)
    at.radio(key="fa_source").set_value("A saved run (weights needed)").run()
    labels = at.selectbox(key="fa_run").options
    assert len(labels) == 1 and "tiny" in labels[0]  # the runs saved without weights are not offered
    assert [s.has_weights for s in run_store.list()] == [True, False, False]


def test_feature_ansatz_analyses_an_uploaded_checkpoint():
    from safetensors.torch import save

    from convcov_core import models
    from helpers.pages import new_app

    torch.manual_seed(3)
    rgb = models.build_model("convmixer-8/2", num_classes=10, in_chans=3, kernel_size=5, patch_size=2)
    at = new_app(FEATURE).run()
    at.radio(key="fa_source").set_value("An uploaded checkpoint").run()
    assert "Upload a checkpoint in the sidebar" in at.info[0].value and charts(at) == 0
    upload = ("rgb.safetensors", save(rgb.state_dict()), "application/octet-stream")
    at.get("file_uploader")[0].set_value(upload)
    at.run()
    assert "takes 3-channel images but mnist5k has 1-channel ones" in at.error[0].value  # the default images
    at.selectbox(key="fa_dataset").set_value("textures")
    at.select_slider(key="fa_n_images").set_value(16).run()
    assert_clean(at, "checkpoint on colour textures")
    assert "rgb.safetensors: convmixer-8/2 (k = 5)" in at.markdown[1].value
    assert list(at.dataframe[0].value["layer"])[:2] == ["stem.0", "blocks.0.0.fn.0"]
    assert charts(at) == 4  # r per layer, the matrix pair, eigenfilters, feature maps


def test_frequency_view_of_an_uploaded_checkpoint():
    from safetensors.torch import save

    from convcov_core import models
    from helpers.pages import new_app

    torch.manual_seed(3)
    net = models.build_model("convmixer-8/3", num_classes=10, in_chans=3, kernel_size=7, patch_size=2)
    at = new_app(FREQUENCY).run()
    at.radio(key="fv_source").set_value("Trained filters of a network").run()
    at.radio(key="fv_network").set_value("An uploaded checkpoint").run()  # saved runs may exist by now
    upload = ("net.safetensors", save(net.state_dict()), "application/octet-stream")
    at.get("file_uploader")[0].set_value(upload)
    at.run()
    assert_clean(at, "trained filters of an upload")
    assert charts(at) == 4 and any("Diamonds" in c.value for c in at.caption)
    assert not [s for s in at.slider if s.key == "fv_kernel_size"]  # the checkpoint's own k
    at.radio(key="fv_source").set_value("Learned covariance of a network").run()
    assert_clean(at, "learned covariance of an upload")
    at.get("file_uploader")[0].set_value(("notes.pt", b"not weights", "application/octet-stream"))
    at.run()
    assert "notes.pt is not a checkpoint" in at.error[0].value and charts(at) == 0


def test_frequency_warns_about_a_saved_run_whose_filters_were_wider_than_its_maps(tmp_path, monkeypatch):
    from helpers.runs import fake_run

    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))
    run = fake_run(k=5)
    run.config = run.config.replace(patch_size=14)  # 2 x 2 maps on 28 x 28 digits
    runs.RunStore().save(run)
    st.cache_data.clear()
    at = run_page(FREQUENCY)
    at.radio(key="fv_source").set_value("Learned covariance of a network").run()
    assert_clean(at, "a run with 2 x 2 maps")
    warning = " ".join(w.value for w in at.warning)
    assert "2 of 2 depthwise layers" in warning


def test_feature_ansatz_resets_its_views_for_another_network_after_a_stopped_run(tmp_path, monkeypatch):
    """Between two networks the page stops once (no checkpoint uploaded yet); after such a run
    Streamlit hands the script a keyed widget's old value while the browser shows its new default,
    so the image number and the layer must be set again for the new network."""
    from safetensors.torch import save

    from convcov_core import examples, models
    from helpers.pages import new_app

    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))
    examples.add_to_store(runs.RunStore())
    st.cache_data.clear()
    at = new_app(FEATURE, timeout=120).run()
    at.radio(key="fa_source").set_value("A saved run (weights needed)").run()
    at.select_slider(key="fa_n_images").set_value(16).run()
    at.selectbox(key="fa_layer").set_value(at.selectbox(key="fa_layer").options[-1])
    at.number_input(key="fa_image").set_value(12).run()
    at.radio(key="fa_source").set_value("An uploaded checkpoint").run()  # stops: no file yet
    at.select_slider(key="fa_n_images").set_value(4).run()
    torch.manual_seed(0)
    mine = models.build_model("convmixer-8/2", num_classes=10, in_chans=1, kernel_size=5, patch_size=2)
    at.get("file_uploader")[0].set_value(("mine.safetensors", save(mine.state_dict()), "application/octet-stream"))
    at.run()
    assert_clean(at, "the uploaded network after the example")
    assert at.selectbox(key="fa_layer").value == "blocks.0.0.fn.0"  # its first depthwise layer
    assert at.number_input(key="fa_image").value == 0  # 4 images now: #12 does not exist
