"""The Scheme registry is the one description of an init scheme: a scheme registered at run time is
offered and used by every front end by itself, each front end asking the Scheme (level, sigma, source)
and never its name."""

import dataclasses

import numpy as np
import pytest
import torch

from convcov_app import lab, labels
from convcov_app import sweeps as sweeps_page
from convcov_core import covariance, init, models, sweep
from convcov_core.cli import main
from convcov_core.train import TrainConfig
from helpers.schemes import offered


@pytest.fixture
def toy(monkeypatch):
    """Three throwaway schemes: a closed form (the rational quadratic at alpha = 3, drawn as the
    Gaussian scheme draws), one that needs learned covariances and one that sets a whole model."""
    closed = init.ClosedForm("rational-quadratic", alpha=3.0)
    for name, like, changes in (("toy-closed", "gaussian", {"closed_form": closed}), ("toy-learned", "learned", {}),
                                ("toy-model", "mimetic", {})):
        monkeypatch.setitem(init.SCHEMES, name, dataclasses.replace(init.SCHEMES[like], name=name,
                                                                    description=f"a throwaway {like}", **changes))


def test_a_registered_closed_form_scheme_is_offered_everywhere(toy):
    assert offered("toy-closed") == dict.fromkeys(offered("toy-closed"), True)
    assert init.using_sigma(["default", "toy-closed"]) == ["toy-closed"]
    assert labels.scheme_label("toy-closed") == "Rational quadratic covariance"  # named by its closed form
    assert "(1 + d² / (2 α σ²))^(−α)" in labels.scheme_help("toy-closed")  # typeset as the pages write it
    v = init.default_variance(5)
    assert torch.allclose(init.scheme_covariance("toy-closed", 5, sigma=1.5),
                          v * covariance.closed_form("rational-quadratic", 5, 1.5, alpha=3.0))


def test_a_registered_closed_form_scheme_gets_the_sigma_schedule_in_the_lab_and_sweeps(toy):
    setup = lab.LabSetup(inits=("default", "toy-closed"), filters="trained", sigma_first=1.5, sigma_last=2.5)
    plan = lab.plan_comparison(setup)
    assert plan.variants["toy-closed"] == {"init": "toy-closed", "freeze_filters": False, "sigma_first": 1.5,
                                           "sigma_last": 2.5}
    assert plan.variants["default"] == {"init": "default", "freeze_filters": False}
    choice = sweeps_page.GridChoice("toy", kernel_sizes=(5,), filters=("frozen",), inits=("default", "toy-closed"),
                                    schedule="custom", sigma_firsts=(1.0, 2.0), n_seeds=1)
    assert "toy-closed here" in sweeps_page.schedule_caption(choice)
    grid = sweeps_page.build_sweep(choice)
    assert grid.axes == {"sigma_first": [1.0, 2.0]}
    assert {t.config.sigma_first for t in grid.trials() if t.init == "toy-closed"} == {1.0, 2.0}


def test_a_registered_closed_form_scheme_samples_through_the_cli(toy, tmp_path):
    out = tmp_path / "toy.npy"
    assert main(["sample", "--scheme", "toy-closed", "--kernel-size", "5", "--sigma", "1.5", "--n", "8",
                 "--out", str(out)]) == 0
    expected = init.sample_scheme("toy-closed", 5, 8, sigma=1.5, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(np.load(out), expected.numpy())


def test_a_scheme_that_needs_a_source_is_offered_only_where_there_are_covariances(toy):
    where = offered("toy-learned")
    assert not any(where[f] for f in ("cli sample --scheme", "gallery", "sweeps page", "sweep grid"))
    assert "toy-learned" in lab.offered_schemes(True, False, True)
    assert "toy-learned" in labels.scheme_names(include_learned=True)
    assert init.needing_source(["gaussian", "toy-learned"]) == ["toy-learned"]
    with pytest.raises(ValueError, match="the toy-learned init needs covariances"):
        lab.plan_comparison(lab.LabSetup(inits=("default", "toy-learned")))
    with pytest.raises(ValueError, match="the toy-learned scheme needs covariances"):
        sweep.Sweep("toy", TrainConfig(), {}, ["default", "toy-learned"], [0]).validate()


def test_a_model_level_scheme_is_offered_for_models_without_depthwise_filters(toy):
    assert lab.offered_schemes(False, False, False) == ["default", "mimetic", "toy-model"]
    assert "toy-model" not in lab.offered_schemes(True, False, True)
    assert "toy-model" in init.scheme_names("model") and "toy-model" not in init.scheme_names("depthwise")
    with pytest.raises(ValueError, match="sets a whole model"):
        init.sample_scheme("toy-model", 5, 4)
    model = models.build_model("convmixer-8/2", num_classes=2, in_chans=1, kernel_size=5, patch_size=2,
                               image_size=8)
    with pytest.raises(ValueError, match="sets a whole model"):
        init.init_depthwise_(model, "toy-model")


def test_the_native_scheme_alone_leaves_a_model_without_depthwise_filters_as_built():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
    before = [p.clone() for p in model.parameters()]
    assert init.init_model_(model, "default") == []
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="no depthwise convolutions"):
        init.init_model_(model, "gaussian")


def test_a_scheme_is_either_drawn_or_applied_and_a_closed_form_needs_no_source():
    with pytest.raises(ValueError, match="give a draw"):
        init.Scheme("neither", "draws nothing")
    with pytest.raises(ValueError, match="needs no source"):
        dataclasses.replace(init.SCHEMES["gaussian"], needs_source=True)
    assert [s.level for s in map(init.get_scheme, ("default", "mimetic"))] == ["depthwise", "model"]
    assert init.get_scheme("gaussian").reads == ("sigma_first", "sigma_last")
    assert init.get_scheme("learned").reads == ("covariances",)
    assert init.get_scheme("impulse").reads == () and init.get_scheme("impulse").params == {"pixels": 1}
    with pytest.raises(ValueError, match="level must be one of depthwise, model"):
        init.scheme_names("layer")
