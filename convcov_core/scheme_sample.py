"""A sample of an init scheme's filters checked against the covariance the scheme targets: a few
filters to look at, the covariance of a large sample next to the target (with their relative
Frobenius error), and the mean |FFT| of the filters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import analysis, covariance, init

SPECTRUM_FILTERS = 256
SPECTRUM_SIZE = 64


@dataclass
class SchemeSample:
    """Filters drawn from one scheme, their sample covariance against the scheme's target, their spectrum."""

    filters: torch.Tensor  # (n_show, k, k)
    empirical: torch.Tensor  # k^2 x k^2, from n_sample filters
    target: torch.Tensor  # k^2 x k^2
    relative_error: float  # ||empirical - target||_F / ||target||_F
    spectrum: torch.Tensor  # mean |FFT| over up to SPECTRUM_FILTERS filters, size x size


def scheme_sample(scheme: str, kernel_size: int, n_show: int, n_sample: int, seed: int, *,
                  sigma: float | None = None, learned: torch.Tensor | None = None) -> SchemeSample:
    """Draw n_show filters to look at and n_sample more to estimate the covariance, from one seed. The
    target is the covariance at the default variance v = 1 / (3 k^2) (init.scheme_covariance): v I for
    the i.i.d. and orthogonal schemes, v S / mean(diag S) for the Gaussian closed form or the learned
    covariance, each peer scheme's own (all-pass: estimated)."""
    if n_sample < 2:
        raise ValueError(f"the covariance sample needs at least 2 filters, got {n_sample}")
    generator = torch.Generator().manual_seed(int(seed))
    draw = dict(sigma=sigma, covariance=learned, generator=generator)
    shown = init.sample_scheme(scheme, kernel_size, n_show, **draw)
    sample = init.sample_scheme(scheme, kernel_size, n_sample, **draw)
    target = init.scheme_covariance(scheme, kernel_size, sigma=sigma, covariance=learned)
    estimate = covariance.empirical(sample)
    error = float(torch.linalg.matrix_norm(estimate - target) / torch.linalg.matrix_norm(target))
    spectrum = analysis.spectrum(sample[:SPECTRUM_FILTERS], size=max(SPECTRUM_SIZE, kernel_size))
    return SchemeSample(shown, estimate, target, error, spectrum)
