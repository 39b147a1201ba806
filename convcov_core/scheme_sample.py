"""What one Filter Gallery column shows for an init scheme: filters drawn from it, the covariance of
a large sample next to the covariance the scheme targets (with their relative Frobenius error),
and the mean |FFT| of the filters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import analysis, covariance, init


def target_covariance(scheme: str, kernel_size: int, *, sigma: float | None = None,
                      learned: torch.Tensor | None = None) -> torch.Tensor:
    """The covariance a scheme's filters have at the default variance v = 1 / (3 k^2)
    (init.scheme_covariance): v I for the i.i.d. and orthogonal schemes, v S / mean(diag S) for the
    Gaussian closed form or the learned covariance, each peer scheme's own (all-pass: estimated)."""
    return init.scheme_covariance(scheme, kernel_size, sigma=sigma, covariance=learned)


@dataclass
class GalleryPanel:
    """Everything one gallery column shows for one scheme."""

    filters: torch.Tensor  # (n_show, k, k)
    empirical: torch.Tensor  # k^2 x k^2, from n_sample filters
    target: torch.Tensor  # k^2 x k^2
    relative_error: float  # ||empirical - target||_F / ||target||_F
    spectrum: torch.Tensor  # mean |FFT| over up to SPECTRUM_FILTERS filters, size x size


SPECTRUM_FILTERS = 256


SPECTRUM_SIZE = 64


def gallery_panel(scheme: str, kernel_size: int, n_show: int, n_sample: int, seed: int, *,
                  sigma: float | None = None, learned: torch.Tensor | None = None) -> GalleryPanel:
    """Draw n_show filters to look at and n_sample more to estimate the covariance, from one seed."""
    if n_sample < 2:
        raise ValueError(f"the covariance sample needs at least 2 filters, got {n_sample}")
    generator = torch.Generator().manual_seed(int(seed))
    draw = dict(sigma=sigma, covariance=learned, generator=generator)
    shown = init.sample_scheme(scheme, kernel_size, n_show, **draw)
    sample = init.sample_scheme(scheme, kernel_size, n_sample, **draw)
    target = target_covariance(scheme, kernel_size, sigma=sigma, learned=learned)
    estimate = covariance.empirical(sample)
    error = float(torch.linalg.matrix_norm(estimate - target) / torch.linalg.matrix_norm(target))
    spectrum = analysis.spectrum(sample[:SPECTRUM_FILTERS], size=max(SPECTRUM_SIZE, kernel_size))
    return GalleryPanel(shown, estimate, target, error, spectrum)
