"""The closed-form families beside the Gaussian (covariance.FAMILIES) as init schemes: each draws
N(0, v S / mean diag S) of its closed form exactly (empirical covariance of 20,000 draws against
scheme_covariance, the variance asked for, band kernels, a whole model on the sigma schedule), and each
is offered by every front end by itself: the CLI, the gallery, the Training Lab with its sigma
controls, Sweeps with its sigma axes, and the Frequency View."""

import numpy as np
import pytest
import torch
from torch import nn

from convcov_app import lab, labels
from convcov_app import sweeps as sweeps_page
from convcov_app.navigation import discover_pages
from convcov_core import covariance as C
from convcov_core import init, models
from convcov_core.cli import main
from helpers.pages import assert_clean, new_app
from helpers.schemes import cli_option, offered

FAMILIES = list(C.FAMILIES)
K, N, SIGMA = 7, 20_000, 1.7


def draw(family, n=N, k=K, sigma=SIGMA, **more):
    return init.sample_scheme(family, k, n, sigma=sigma, generator=torch.Generator().manual_seed(0), **more).double()


def relative_error(estimate, target):
    return (torch.linalg.matrix_norm(estimate - target) / torch.linalg.matrix_norm(target)).item()


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_a_closed_form_scheme_whose_draws_have_its_covariance(family):
    scheme = init.get_scheme(family)
    assert (scheme.level, scheme.uses_sigma, scheme.needs_source) == ("depthwise", True, False)
    assert scheme.closed_form.family == family
    target = init.scheme_covariance(family, K, sigma=SIGMA)
    assert torch.allclose(target, init.default_variance(K) * C.closed_form(family, K, SIGMA), rtol=1e-12)
    estimate = C.empirical(draw(family))
    assert relative_error(estimate, target) < 0.05  # about 0.02 measured; 1 / sqrt(N) shrinks it
    assert relative_error(estimate, init.scheme_covariance(family, K, sigma=SIGMA * 1.3)) > 0.15  # has power


@pytest.mark.parametrize("family", FAMILIES)
def test_the_variance_asked_for_scales_the_closed_form(family):
    filters = draw(family, variance=0.02)
    assert filters.pow(2).mean().item() == pytest.approx(0.02, rel=0.03)
    assert torch.allclose(init.scheme_covariance(family, K, sigma=SIGMA, variance=0.02),
                          0.02 * C.closed_form(family, K, SIGMA), rtol=1e-12)


def test_the_families_other_than_the_gaussian_are_factored_once_and_kept():
    for family in FAMILIES:
        layer = init.get_scheme(family).closed_form.at(K, SIGMA)
        assert init.get_scheme(family).closed_form.at(K, SIGMA) is layer  # the same factorization, kept
        if isinstance(layer, C.KroneckerCovariance):  # the Gaussian keeps its O(k^3) Kronecker path
            continue
        assert isinstance(layer, C.FactoredCovariance)
        assert torch.allclose(layer.root @ layer.root.T, C.closed_form(family, K, SIGMA), atol=1e-10)


@pytest.mark.parametrize("family", FAMILIES)
def test_band_kernels_get_the_central_window_of_the_closed_form(family):
    """1 x 9 and 9 x 3 depthwise layers: their filters' covariance is v times the window's block of
    the 9 x 9 closed form (unit diagonal, so the window needs no rescaling)."""
    channels, sigma = 8192, 2.0
    model = nn.Sequential(nn.Conv2d(channels, channels, (1, 9), groups=channels),
                          nn.Conv2d(channels, channels, (9, 3), groups=channels))
    touched = init.init_depthwise_(model, family, sigma_first=sigma, sigma_last=sigma,
                                          generator=torch.Generator().manual_seed(1))
    assert touched == ["0", "1"]
    S = C.closed_form(family, 9, sigma).reshape(9, 9, 9, 9)
    for conv in model:
        kh, kw = conv.kernel_size
        rows, cols = slice((9 - kh) // 2, (9 - kh) // 2 + kh), slice((9 - kw) // 2, (9 - kw) // 2 + kw)
        window = S[rows, cols][..., rows, cols].reshape(kh * kw, kh * kw) / (3 * kh * kw)
        W = conv.weight.detach().double().reshape(channels, -1)
        assert relative_error(torch.cov(W.T), window) < 0.06


@pytest.mark.parametrize("family", FAMILIES)
def test_a_convmixer_initialized_with_each_family_follows_the_sigma_schedule(family):
    torch.manual_seed(0)
    model = models.build_model("convmixer-1024/3", num_classes=10, in_chans=1, kernel_size=K, patch_size=2,
                               image_size=28)
    names = init.init_depthwise_(model, family, sigma_first=1.0, sigma_last=3.0,
                                 generator=torch.Generator().manual_seed(0))
    convs = dict(init.depthwise_convs(model))
    fitted = [C.fit_family(C.empirical(convs[name].weight), family)[0] for name in names]
    assert fitted == pytest.approx([1.0, 2.0, 3.0], rel=0.1)  # within 5% measured
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# ---------------------------------------------------------------------------------------------
# Every front end offers each family by itself


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_offered_by_every_front_end(family):
    where = offered(family)
    assert where == dict.fromkeys(where, True), [name for name, yes in where.items() if not yes]
    assert family in cli_option("covariance", "--family").choices
    assert labels.uses_sigma(family) and labels.scheme_label(family).endswith("covariance")
    assert labels.frequency_sources()[f"{labels.scheme_label(family)} (σ)"] == family


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_takes_the_sigma_schedule_in_the_lab_and_the_sigma_axes_of_a_sweep(family):
    plan = lab.plan_comparison(lab.LabSetup(inits=("default", family), sigma_first=1.5, sigma_last=2.5))
    assert plan.variants[f"{family}-frozen"] == {"init": family, "freeze_filters": True, "sigma_first": 1.5,
                                                 "sigma_last": 2.5}
    choice = sweeps_page.GridChoice("families", kernel_sizes=(5,), filters=("frozen",), inits=("default", family),
                                    schedule="custom", sigma_lasts=(2.0, 3.0), n_seeds=1)
    assert f"{family} here" in sweeps_page.schedule_caption(choice)
    trials = sweeps_page.build_sweep(choice).trials()
    assert {t.config.sigma_last for t in trials if t.init == family} == {2.0, 3.0}


def test_each_family_samples_and_writes_its_covariance_through_the_cli(tmp_path):
    for family in FAMILIES:
        out, cov = tmp_path / f"{family}.npy", tmp_path / f"{family}-cov.npy"
        assert main(["sample", "--scheme", family, "--kernel-size", "5", "--sigma", "1.5", "--n", "6",
                     "--seed", "3", "--out", str(out)]) == 0
        expected = init.sample_scheme(family, 5, 6, sigma=1.5, generator=torch.Generator().manual_seed(3))
        assert np.array_equal(np.load(out), expected.numpy())
        assert main(["covariance", "--family", family, "--kernel-size", "5", "--sigma", "1.5", "--out", str(cov)]) == 0
        assert np.allclose(np.load(cov), C.closed_form(family, 5, 1.5).numpy())


# ---------------------------------------------------------------------------------------------
# The pages, their widgets found by label


def page(title: str):
    return new_app(str(next(p.path for p in discover_pages() if p.title == title)), timeout=120)


def widget(widgets, label: str):
    return next(w for w in widgets if w.label.startswith(label))


def test_the_gallery_draws_every_family_with_its_sigma():
    at = page("Filter Gallery").run()
    schemes = widget(at.multiselect, "Init schemes")
    names = [labels.scheme_label(family) for family in FAMILIES]
    assert set(names) <= set(schemes.options)
    schemes.set_value(names).run()
    assert_clean(at, "every family")
    assert len(at.get("plotly_chart")) == 3 * len(FAMILIES)
    assert not widget(at.select_slider, "σ").disabled


def test_the_lab_shows_the_sigma_controls_for_a_family():
    at = page("Training Lab").run()
    inits = widget(at.multiselect, "Compare")
    assert {labels.scheme_label(family) for family in FAMILIES} <= set(inits.options)
    inits.set_value([labels.scheme_label("default"), labels.scheme_label("laplace")]).run()
    assert_clean(at, "laplace chosen")
    assert "laplace" in widget(at.toggle, "Custom σ schedule").label


def test_the_frequency_view_samples_a_family_at_the_sigma_chosen():
    at = page("Frequency View").run()
    widget(at.radio, "Filters from").set_value(f"{labels.scheme_label('matern32')} (σ)").run()
    assert_clean(at, "matern32")
    assert not widget(at.select_slider, "σ").disabled
    assert len(at.get("plotly_chart")) == 4
