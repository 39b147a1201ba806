"""Tests for convcov_core.spectra: effective size, spectrum, radial profile and half-max frequency."""

import math

import pytest
import torch

from convcov_core import analysis


def delta(k: int) -> torch.Tensor:
    f = torch.zeros(k, k)
    f[k // 2, k // 2] = 1.0
    return f


@pytest.mark.parametrize("k", [1, 3, 5, 9, 15])
def test_effective_size_of_delta_and_constant(k):
    assert analysis.effective_size(delta(k)[None]).tolist() == [1]
    assert analysis.effective_size(torch.ones(2, 1, k, k)).tolist() == [k, k]


def test_effective_size_constant_filter_boundary_and_energy_one():
    # (k - 2)^2 / k^2 >= 0.9 first happens at k = 39 (documented in the docstring)
    assert analysis.effective_size(torch.ones(37, 37)).tolist() == [37]
    assert analysis.effective_size(torch.ones(39, 39)).tolist() == [37]
    f = delta(7)
    f[0, 0] = 1e-3
    assert analysis.effective_size(f, energy=0.9).tolist() == [1]
    assert analysis.effective_size(f, energy=1.0).tolist() == [7]


def test_effective_size_per_filter():
    filters = torch.zeros(3, 5, 5)
    filters[0, 2, 2] = 1.0
    filters[1, 1:4, 1:4] = 1.0
    filters[2, 2, 2], filters[2, 0, 4] = 1.0, 3.0  # most energy in a corner
    assert analysis.effective_size(filters).tolist() == [1, 3, 5]


def test_spectrum_of_delta_is_flat_and_dc_is_centred():
    spec = analysis.spectrum(delta(5)[None], size=16)
    assert spec.shape == (16, 16)
    assert torch.allclose(spec, torch.ones(16, 16, dtype=torch.float64))
    constant = analysis.spectrum(torch.ones(3, 1, 3, 3), size=16)
    assert constant[8, 8] == pytest.approx(9.0) and constant.max() == constant[8, 8]


def test_radial_profile_of_flat_spectrum_is_flat():
    radii, profile = analysis.radial_profile(torch.full((16, 16), 2.5))
    assert radii.tolist() == list(range(9))
    assert torch.allclose(profile, torch.full((9,), 2.5, dtype=torch.float64))
    _, centred_peak = analysis.radial_profile(analysis.spectrum(torch.ones(1, 3, 3), size=32))
    assert centred_peak[0] == centred_peak.max()


def test_half_max_frequency_interpolates_where_the_profile_falls_to_half():
    falling = torch.tensor([0.8, 1.0, 0.75, 0.25, 0.1])  # peak at ring 1, half crossed at ring 2.5
    assert analysis.half_max_frequency(falling, size=10) == pytest.approx(0.25)
    assert analysis.half_max_frequency(torch.full((9,), 2.5), size=16) is None  # white noise
    # a Gaussian filter's spectrum: exp(-2 pi^2 sigma^2 f^2) falls to half at
    # f = sqrt(ln 2 / 2) / (pi sigma) cycles/pixel
    sigma = 2.0
    x = torch.arange(-15, 16, dtype=torch.float64)
    bump = torch.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    _, profile = analysis.radial_profile(analysis.spectrum(bump[None], size=128))
    expected = math.sqrt(math.log(2) / 2) / (math.pi * sigma)
    assert analysis.half_max_frequency(profile, size=128) == pytest.approx(expected, abs=0.004)
    for bad in (torch.zeros(5), torch.tensor([1.0]), torch.tensor([1.0, float("nan")])):
        with pytest.raises(ValueError):
            analysis.half_max_frequency(bad, size=10)


@pytest.mark.parametrize("size", [15, 16, 33])
def test_spectrum_from_the_half_spectrum_matches_the_full_fft(size):
    filters = torch.randn(50, 7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(size))
    full = torch.fft.fftshift(torch.fft.fft2(filters, s=(size, size)).abs().mean(dim=0))
    spec = analysis.spectrum(filters, size=size)
    assert spec.dtype == torch.float64 and spec.shape == (size, size)
    assert torch.allclose(spec, full, rtol=1e-5, atol=1e-5)
