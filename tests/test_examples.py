"""The bundled example network: its weights are what its metadata says (same accuracy when evaluated
here), it shows the paper's widening covariances, it round-trips, and the app adds it to a run store
exactly once."""

import re

import pytest
import torch

from convcov_app import lab
from convcov_core import covariance, examples, learned_sets, models, train
from convcov_core.runs import RunStore
from helpers.pages import assert_clean, new_app, poll_until_finished, run_page

LAB = "convcov_app/pages/3_Training_Lab.py"


@pytest.fixture(scope="module")
def example() -> train.RunResult:
    return examples.load_example()


def test_example_is_a_finished_convmixer_with_weights_and_covariances(example):
    assert example.status == "ok" and example.config == examples.EXAMPLE_CONFIG.replace(
        precision=example.precision)
    assert len(example.layer_names) == 8 and len(example.covariances) == 8
    assert all(S.shape == (81, 81) for S in example.covariances)
    assert len(example.history["test_acc"]) == examples.EXAMPLE_CONFIG.epochs
    model = models.build_model("convmixer-64/8", num_classes=10, in_chans=1, kernel_size=9, patch_size=2)
    models.load_checkpoint_into(model, example.state_dict)  # every key, every shape


def test_example_weights_reach_the_recorded_accuracy_when_evaluated_here(example):
    """The shipped weights are the trained ones: evaluating them on the embedded test split gives
    the test accuracy the file records (fp32 here; the run evaluated under its own precision)."""
    _, _, test_x, test_y, info = train.load_training_data(example.config)
    model = train.build_model_for(example.config, info)
    models.load_checkpoint_into(model, example.state_dict)
    accuracy = train.evaluate(model, test_x, test_y)
    assert accuracy > 95 and abs(accuracy - example.final["test_acc"]) < 0.5


def test_example_covariances_widen_with_depth_as_in_the_paper(example):
    """What the pages show of it: the fitted sigma of the later layers is well above the first's."""
    sigmas = [fit["sigma"] for fit in learned_sets.layer_fits(example.covariances)]
    assert sigmas[5] > 1.5 * sigmas[0] and sigmas[6] > 1.5 * sigmas[0]
    assert all(covariance.is_psd(S) for S in example.covariances)


def test_save_and_load_round_trip(tmp_path):
    run = train.train(train.TrainConfig(dataset="noisy-bars", model="convmixer-8/2", kernel_size=5,
                                        patch_size=4, epochs=1, max_steps=2, keep_state_dict=True))
    path = examples.save_example(run, tmp_path / "tiny.safetensors")
    back = examples.load_example(path)
    assert back.config == run.config.replace(precision=run.precision)
    assert (back.history, back.final, back.message, back.layer_names) == (
        run.history, run.final, run.message, run.layer_names)
    assert all(torch.allclose(a, b) for a, b in zip(back.covariances, run.covariances))
    assert all(torch.equal(back.state_dict[k], v) for k, v in run.state_dict.items())

    run.state_dict = None
    with pytest.raises(ValueError, match="kept its weights"):
        examples.save_example(run, tmp_path / "no_weights.safetensors")


@pytest.mark.parametrize("content", [None, b"", b"\x00" * 64, b"garbage" * 50])
def test_a_missing_or_damaged_example_file_is_a_clear_value_error(tmp_path, content):
    path = tmp_path / "example.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="missing or damaged.*python -m convcov_core.examples"):
        examples.load_example(path)


def test_add_to_store_adds_it_once_and_respects_a_delete(tmp_path, example):
    store = RunStore(tmp_path / "runs.db")
    run_id = examples.add_to_store(store)
    assert run_id is not None
    assert examples.add_to_store(RunStore(tmp_path / "runs.db")) is None  # another process, later
    [summary] = store.list()
    assert summary.name == examples.EXAMPLE_NAME and summary.has_weights and summary.has_covariances
    stored = store.get(run_id)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(stored.covariances, example.covariances))
    assert examples.stored_id(store) == run_id
    store.delete(run_id)
    assert examples.add_to_store(store) is None and store.list() == []
    assert examples.stored_id(store) is None


def test_the_app_puts_the_example_in_a_fresh_store_and_the_pages_show_it():
    at = new_app("app.py").run()
    assert_clean(at)
    [summary] = RunStore().list()
    assert summary.name == examples.EXAMPLE_NAME

    learned = run_page("convcov_app/pages/4_Learned_Covariances.py", timeout=120)
    assert learned.radio(key="lc_source").value == "A saved run"
    assert learned.selectbox(key="lc_run").value.startswith(f"#{summary.id} example: convmixer-64/8")
    assert len(learned.get("plotly_chart")) == 5
    assert f"the bundled example (run #{summary.id}): convmixer-64/8 on mnist5k" in learned.markdown[1].value

    lab_page = run_page(LAB, timeout=120)
    assert "Learned covariance" in lab_page.multiselect(key="lab_inits").options


def test_the_transfer_preview_says_what_resizing_does_to_sigma():
    """9 x 9 -> 15 x 15: align-corners interpolation stretches the window by (15 - 1)/(9 - 1) = 1.75,
    and the page gives the fitted sigma of the first and last layers before and after."""
    examples.add_to_store(RunStore())
    page = run_page("convcov_app/pages/4_Learned_Covariances.py", timeout=120)
    assert not [c for c in page.caption if "Resizing stretches" in c.value]  # k' = k: nothing resized
    page.slider(key="lc_new_k").set_value(15).run()
    [note] = [c.value for c in page.caption if "Resizing stretches" in c.value]
    assert "(k′ − 1)/(k − 1) = 1.75" in note
    before, after = (float(x) for x in re.search(r"layer 1 goes from σ ([\d.]+) to ([\d.]+) px", note).groups())
    assert 1.5 * before < after < 3 * before  # the narrow first layer broadens by more than 1.75


def test_the_lab_preset_with_a_learned_scheme_learns_from_the_example():
    examples.add_to_store(RunStore())  # a no-op when the app test above has added it already
    at = run_page(LAB, timeout=120)
    at.selectbox(key="lab_preset").set_value(lab.LEARNED_FROZEN).run()
    assert_clean(at, "preset")
    assert at.multiselect(key="lab_inits").value == [
        "PyTorch default (uniform)", "Gaussian covariance", "Learned covariance"]
    assert " example: convmixer-64/8 on mnist5k" in at.selectbox(key="lab_learned").value

    at.number_input(key="lab_seeds").set_value(1)
    at.number_input(key="lab_max_steps").set_value(2).run()
    at.button(key="lab_run").click().run()
    poll_until_finished(at)
    assert_clean(at, "finished")
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["default-frozen", "gaussian-frozen", "learned-frozen"]


def test_the_preset_says_so_when_the_example_was_deleted(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))  # a store without the example
    at = run_page(LAB, timeout=120)
    at.selectbox(key="lab_preset").set_value(lab.LEARNED_FROZEN).run()
    assert_clean(at, "preset without the example")
    assert "Learned covariance" not in at.multiselect(key="lab_inits").value
    assert "no longer in the run store" in at.warning[0].value


def test_the_example_file_is_package_data():
    """A wheel carries the file (pyproject's package-data glob matches it), not only a checkout."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    pyproject = tomllib.loads((examples.EXAMPLE_PATH.parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["convcov_core"]
    package = examples.EXAMPLE_PATH.parents[1]
    assert any(examples.EXAMPLE_PATH in package.glob(pattern) for pattern in globs)


def test_every_page_that_reads_trained_filters_works_on_the_example():
    examples.add_to_store(RunStore())  # a no-op when an earlier test of this module added it

    def pick_example(selectbox):
        return selectbox.set_value(next(o for o in selectbox.options if " example: " in o))

    gallery = run_page("convcov_app/pages/2_Filter_Gallery.py", timeout=120)
    gallery.multiselect(key="gallery_schemes").set_value(["Gaussian covariance", "Learned covariance"]).run()
    pick_example(gallery.selectbox(key="gallery_run")).run()
    gallery.slider(key="gallery_layer").set_value(7).run()
    assert_clean(gallery, "gallery, learned scheme from the example")
    assert all("frozen" not in o for o in gallery.selectbox(key="gallery_run").options)  # nothing learned
    assert len(gallery.get("plotly_chart")) == 2 * 3

    frequency = run_page("convcov_app/pages/6_Frequency_View.py", timeout=120)
    for source in ("Learned covariance of a network", "Trained filters of a network"):
        frequency.radio(key="fv_source").set_value(source).run()
        pick_example(frequency.selectbox(key="fv_run")).run()
        assert_clean(frequency, source)
        assert "Diamonds: the network's layers" in frequency.caption[-1].value  # its 8 layers placed by σ

    ansatz = run_page("convcov_app/pages/5_Feature_Ansatz.py", timeout=300)
    ansatz.radio(key="fa_source").set_value("A saved run (weights needed)").run()
    pick_example(ansatz.selectbox(key="fa_run")).run()
    assert_clean(ansatz, "feature ansatz on the example")
    rows = ansatz.dataframe[0].value
    assert len(rows) == 17 and (rows["r trained"] > 0.5).all()  # stem, 8 depthwise, 8 pointwise
