"""Page test (AppTest) of the Feature Ansatz page's ConvRFM section: the measured sweep, then a ConvRFM
fitted beside a tiny CNN trained on the page."""

import json

import pytest

from convcov_core.rfm import NoiseSweep, Setup, experiment
from helpers.pages import assert_clean, run_page
from test_pages_analysis import FEATURE, charts, tiny_training, wait_for


def trained(at) -> bool:
    """The CNN analysed and its training job over (a CNN saved by an earlier test shows at once)."""
    return charts(at) == 4 and not at.button(key="fa_train").disabled


@pytest.fixture
def measured(tmp_path, monkeypatch):
    """A measured sweep file of two noise levels and two seeds, where the page looks for it."""
    rows = [{"noise": noise, "seed": seed, "model": model, "test_acc": 50 + 10 * i + seed - 5 * noise, "seconds": 1.0}
            for noise in (0.5, 1.0) for seed in (0, 1) for i, model in enumerate(("base kernel", "ConvRFM",
                                                                                    "Deep ConvRFM", "CNN"))]
    path = tmp_path / "noisy-bars.json"
    path.write_text(json.dumps(NoiseSweep(Setup(), [0.5, 1.0], [0, 1], rows).to_dict()))
    monkeypatch.setattr(experiment, "MEASURED", path)
    return path


def test_convrfm_section_shows_the_sweep_and_fits_beside_the_cnn(measured):
    at = run_page(FEATURE, timeout=120)
    tiny_training(at, layers=1)
    wait_for(at, trained)
    assert not [e for e in at.button if e.key == "fa_rfm_fit"]  # behind the toggle
    at.toggle(key="fa_rfm_show").set_value(True).run()
    assert_clean(at, "ConvRFM shown")
    assert charts(at) == 5 and any("test accuracy against noise" in c.value or "noisy-bars" in c.value
                                   for c in at.caption)
    at.select_slider(key="fa_rfm_images").set_value(50).run()
    at.button(key="fa_rfm_fit").click().run()
    assert_clean(at, "ConvRFM fitted")
    assert charts(at) == 7  # + eigenvectors of M, feature maps beside the CNN's
    assert any(m.value.startswith("**ConvRFM:** test accuracy") for m in at.markdown)
    table = at.dataframe[1].value
    assert len(table) == 3 and table["r"].between(-1, 1).all()
    assert "CNN WᵀW (block1.0)" in table["against"].iloc[0]
    at.number_input(key="fa_image").set_value(3).run()  # another test image: the fit is kept
    assert_clean(at, "another image")
    assert charts(at) == 7


def test_convrfm_section_says_where_the_sweep_comes_from_when_it_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "MEASURED", tmp_path / "none.json")
    at = run_page(FEATURE, timeout=120)
    tiny_training(at, layers=1)
    wait_for(at, trained)
    at.toggle(key="fa_rfm_show").set_value(True).run()
    assert_clean(at, "no sweep")
    assert any("convcov_core rfm --json" in i.value for i in at.info) and charts(at) == 4
