"""Closed-form covariance families beside the Gaussian: formulas, positive definiteness, fits."""

import math

import pytest
import torch

from convcov_core import covariance


@pytest.mark.parametrize("family", list(covariance.FAMILIES))
def test_each_family_is_a_unit_diagonal_positive_definite_correlation(family):
    S = covariance.closed_form(family, 7, 1.7)
    assert S.shape == (49, 49)
    assert torch.allclose(S.diagonal(), torch.ones(49, dtype=torch.float64))
    assert torch.allclose(S, S.T)
    assert torch.linalg.eigvalsh(S).min() > -1e-10


def test_the_families_follow_their_formulas_at_one_pair_of_pixels():
    # pixels (0, 0) and (1, 2) of a 3 x 3 filter: d = sqrt(5)
    d, s, p, q = math.sqrt(5), 1.5, 0, 3 * 1 + 2
    expected = {
        "gaussian": math.exp(-d * d / (2 * s * s)),
        "laplace": math.exp(-d / s),
        "matern32": (1 + math.sqrt(3) * d / s) * math.exp(-math.sqrt(3) * d / s),
        "matern52": (1 + math.sqrt(5) * d / s + 5 * d * d / (3 * s * s)) * math.exp(-math.sqrt(5) * d / s),
        "rational-quadratic": (1 + d * d / (2 * s * s)) ** -1,
    }
    for family, value in expected.items():
        assert covariance.closed_form(family, 3, s)[p, q].item() == pytest.approx(value, rel=1e-12)
    alpha = 2.5
    rq = covariance.closed_form("rational-quadratic", 3, s, alpha=alpha)[p, q].item()
    assert rq == pytest.approx((1 + d * d / (2 * alpha * s * s)) ** -alpha, rel=1e-12)


def test_only_the_gaussian_is_kronecker():
    assert isinstance(covariance.closed_form("gaussian", 5, 1.0, structured=True), covariance.KroneckerCovariance)
    assert torch.allclose(covariance.closed_form("gaussian", 5, 1.0), covariance.gaussian(5, 1.0))
    laplace = covariance.closed_form("laplace", 5, 1.0, structured=True)
    assert isinstance(laplace, torch.Tensor)
    A = torch.exp(-(torch.arange(5.0)[:, None] - torch.arange(5.0)).abs().double())
    assert not torch.allclose(laplace, torch.kron(A, A))  # exp(-|dx| - |dy|) is not exp(-d)


@pytest.mark.parametrize("family", list(covariance.FAMILIES))
def test_fit_family_recovers_the_sigma_it_was_built_with(family):
    S = 0.3 * covariance.closed_form(family, 9, 2.4)  # the scale does not matter
    sigma, r = covariance.fit_family(S, family)
    assert sigma == pytest.approx(2.4, rel=1e-4)
    assert r == pytest.approx(1.0, abs=1e-9)


def test_fit_family_prefers_the_family_that_made_the_matrix():
    S = covariance.closed_form("laplace", 9, 3.0)
    r_laplace = covariance.fit_family(S, "laplace")[1]
    r_gauss = covariance.fit_family(S, "gaussian")[1]
    assert r_laplace > r_gauss + 0.01


@pytest.mark.parametrize("bad", ["cauchy", "Gaussian", ""])
def test_an_unknown_family_is_refused_with_the_list(bad):
    with pytest.raises(ValueError, match="choose one of: gaussian, laplace"):
        covariance.closed_form(bad, 5, 1.0)


def test_a_bad_sigma_or_alpha_is_refused():
    with pytest.raises(ValueError, match="sigma"):
        covariance.closed_form("matern32", 5, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        covariance.closed_form("rational-quadratic", 5, 1.0, alpha=-1)


def test_fit_families_fits_each_as_fit_family_does_and_checks_every_name_first():
    S = covariance.empirical(torch.randn(40, 7, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    fits = covariance.fit_families(S)
    assert list(fits) == list(covariance.FAMILIES)
    assert fits == {family: covariance.fit_family(S, family) for family in covariance.FAMILIES}
    with pytest.raises(ValueError, match="unknown covariance family 'cauchy'"):
        covariance.fit_families(S, ("gaussian", "cauchy"))
