"""Pages open on something that shows (#25 item 5): the most structured learned layer, the bundled
example's Feature Ansatz analysis, and in the Training Lab the last comparison or what a run draws."""

import pytest

from convcov_app.store import add_bundled_example, run_store
from convcov_core import compare, examples, learned_sets, train
from helpers.pages import run_page

LEARNED = "convcov_app/pages/4_Learned_Covariances.py"
GALLERY = "convcov_app/pages/2_Filter_Gallery.py"
FEATURE_ANSATZ = "convcov_app/pages/5_Feature_Ansatz.py"
LAB = "convcov_app/pages/3_Training_Lab.py"


@pytest.fixture(scope="module")
def example_layer():
    """The bundled example in this module's run store, and the layer (from 1) a page should open on."""
    add_bundled_example()
    fits = learned_sets.layer_fits(examples.load_example().covariances)
    return learned_sets.most_structured_layer(fits) + 1


def test_most_structured_layer_is_the_widest_bump_the_closed_form_fits():
    fits = [{"sigma": 0.6, "r": 0.9}, {"sigma": 1.3, "r": 0.7}, {"sigma": 4.0, "r": 0.2}, {"sigma": 1.0, "r": 0.8}]
    assert learned_sets.most_structured_layer(fits) == 1  # sigma 4 fits too badly to count
    assert learned_sets.most_structured_layer([{"sigma": 3.0, "r": 0.1}, {"sigma": 1.0, "r": 0.3}]) == 1
    with pytest.raises(ValueError):
        learned_sets.most_structured_layer([])


def test_learned_covariances_opens_on_the_most_structured_layer(example_layer):
    assert example_layer > 1  # the bundled example's first layer is nearly a delta
    at = run_page(LEARNED, timeout=120)
    assert at.slider(key="lc_layer").value == example_layer
    assert f"The page opens on layer {example_layer}," in " ".join(c.value for c in at.caption)


def test_gallery_learned_scheme_opens_on_the_most_structured_layer(example_layer):
    at = run_page(GALLERY, timeout=120)
    learned = next(o for o in at.multiselect(key="gallery_schemes").options if "earned" in o)
    at.multiselect(key="gallery_schemes").set_value([learned]).run()
    assert not at.exception
    assert at.slider(key="gallery_layer").value == example_layer


def test_feature_ansatz_opens_on_the_bundled_example_analysis(example_layer):
    at = run_page(FEATURE_ANSATZ, timeout=300)
    assert at.radio(key="fa_source").value == "A small CNN trained here"
    assert "bundled example network" in at.info[0].value
    assert f"run #{examples.stored_id(run_store())}" in " ".join(m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 4  # r per layer, AGOP vs CNFM, eigenfilters, feature maps


def test_training_lab_shows_what_a_run_draws_then_the_latest_comparison(example_layer):
    at = run_page(LAB, timeout=120)
    assert [h.value for h in at.header if h.value == "What a run draws"]
    assert len(at.get("plotly_chart")) == 2
    config = train.TrainConfig(dataset="noisy-bars", model="convmixer-8/1", kernel_size=3, patch_size=4,
                               epochs=1, max_steps=2, batch_size=16)
    result = compare.compare(config, {"default": {"init": "default"}}, seeds=[0])
    saved_id = run_store().save_comparison(result)
    at = run_page(LAB, timeout=120)
    assert [h.value for h in at.header if h.value == "Latest comparison on this server"]
    assert f"Comparison #{saved_id}:" in " ".join(m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 2
