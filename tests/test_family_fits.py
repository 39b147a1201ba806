"""Which closed-form family fits each learned layer: every family's fit per layer, the best by r, and
the measured answer for the bundled example (docs/learned.md)."""

import math

import pytest
import torch

from convcov_core import covariance, examples, learned_sets, sampling
from convcov_core.family_fits import CLOSE_R, FamilyFit, LayerFamilies, best_layers, family_fits


@pytest.fixture(scope="module")
def example_rows():
    return family_fits(examples.load_example().covariances)


def test_every_layer_has_every_family_and_the_gaussian_column_is_the_pages_fit(example_rows):
    covariances = examples.load_example().covariances
    assert [row.layer for row in example_rows] == list(range(1, len(covariances) + 1))
    for row, gaussian in zip(example_rows, learned_sets.layer_fits(covariances)):
        assert [f.family for f in row.fits] == list(covariance.FAMILIES)
        assert row.of("gaussian") == FamilyFit("gaussian", gaussian["sigma"], gaussian["r"])
        assert row.best.r == max(f.r for f in row.fits)
        assert row.gaussian_gap == pytest.approx(row.best.r - row.of("gaussian").r)


def test_the_bundled_example_is_laplace_past_its_first_two_layers(example_rows):
    """The answer docs/learned.md gives: the first two layers (nearly deltas) tie, Laplace fits the
    deeper ones best, the Gaussian 0.02-0.07 behind in r."""
    assert all(row.gaussian_gap < CLOSE_R for row in example_rows[:2])
    assert best_layers(example_rows)["laplace"] == [3, 4, 5, 6, 7, 8]
    assert all(0.015 < row.gaussian_gap < 0.07 for row in example_rows[2:])


@pytest.mark.parametrize("family", list(covariance.FAMILIES))
def test_a_covariance_built_from_a_family_is_fitted_best_by_it(family):
    exact = covariance.closed_form(family, 9, 2.0)
    row = family_fits([exact])[0]
    assert row.best.family == family and row.best.r == pytest.approx(1.0, abs=1e-9)
    assert row.best.sigma == pytest.approx(2.0, rel=1e-4)
    # and from 4,000 filters drawn from it, as a layer's covariance is estimated
    filters = sampling.sample_filters(exact, 4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert family_fits([covariance.empirical(filters)])[0].best.family == family


def test_best_layers_counts_most_first_and_skips_a_constant_layer():
    layers = [covariance.closed_form("laplace", 5, 1.5), torch.ones(25, 25, dtype=torch.float64),
              covariance.closed_form("gaussian", 5, 1.5), covariance.closed_form("laplace", 5, 2.5)]
    rows = family_fits(layers)
    assert rows[1].best is None and math.isnan(rows[1].gaussian_gap)
    assert best_layers(rows) == {"laplace": [1, 4], "gaussian": [3]}


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no layers"):
        family_fits([])
    with pytest.raises(ValueError, match="unknown covariance family"):
        LayerFamilies(1, ()).of("cauchy")
    with pytest.raises(ValueError):
        family_fits([torch.ones(24, 24)])  # not k^2 x k^2
