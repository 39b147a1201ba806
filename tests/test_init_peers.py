"""The init schemes from peers and the seed papers (impulse, box-3, gaussian-bump, delta-orthogonal,
all-pass): each scheme's mean, per-weight second moment and covariance on a large sample against what
its definition implies (derived here, not read from the library), the defining property of each
(one pixel, three equal pixels, a Gaussian bump, the identity conv, |DFT| = 1), and that they work
wherever schemes are used."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convcov_core import covariance as C
from convcov_core.allpass import GRID
from convcov_core.init import (
    SCHEMES,
    allpass_filters,
    allpass_truncation_error,
    default_variance,
    depthwise_convs,
    init_depthwise_,
    sample_scheme,
    scheme_covariance,
)
from convcov_core.scheme_sample import scheme_sample
from convcov_core.train import TrainConfig

PEERS = ["impulse", "box-3", "gaussian-bump", "delta-orthogonal", "all-pass"]
K, N = 5, 40_000
V = default_variance(K)


def draw(scheme, n=N, k=K, sigma=None, seed=0):
    return sample_scheme(scheme, k, n, sigma=sigma, generator=torch.Generator().manual_seed(seed)).double()


def relative_error(estimate, target):
    return (torch.linalg.matrix_norm(estimate - target) / torch.linalg.matrix_norm(target)).item()


def box_moments(k, v, n_pixels):
    """(mean, covariance) of box-n from its definition: n of d = k^2 pixels at c = sqrt(d v / n)."""
    d = k * k
    c = math.sqrt(d * v / n_pixels)
    p_one, p_two = n_pixels / d, n_pixels * (n_pixels - 1) / (d * (d - 1))  # P(p on), P(p and q on)
    second = torch.full((d, d), c * c * p_two, dtype=torch.float64)
    second.fill_diagonal_(c * c * p_one)
    mean = torch.full((d,), c * p_one, dtype=torch.float64)
    return mean, second - torch.outer(mean, mean)


def test_every_peer_scheme_is_registered_and_reaches_the_variance():
    for name in PEERS:
        filters = draw(name)
        assert filters.shape == (N, K, K)
        assert filters.pow(2).mean().item() == pytest.approx(V, rel=0.02), name


@pytest.mark.parametrize("name, n_pixels", [("impulse", 1), ("box-3", 3)])
def test_impulse_and_box_statistics_follow_their_definition(name, n_pixels):
    filters = draw(name)
    flat = filters.reshape(N, -1)
    c = math.sqrt(K * K * V / n_pixels)
    assert ((flat != 0).sum(dim=1) == n_pixels).all()
    assert torch.allclose(flat[flat != 0], torch.full_like(flat[flat != 0], c))
    mean, cov = box_moments(K, V, n_pixels)
    assert torch.allclose(scheme_covariance(name, K), cov)
    assert (flat.mean(dim=0) - mean).abs().max().item() < 0.1 * mean[0].item()
    assert relative_error(C.empirical(filters), cov) < 0.05
    assert (flat != 0).double().mean(dim=0).sub(n_pixels / K**2).abs().max() < 0.01  # positions uniform


def test_impulse_covariance_is_v_times_identity_minus_mean():
    """Impulse: E[w w^T] = v I and E[w] = sqrt(v)/k, so Cov = v (I - 11^T / k^2)."""
    d = K * K
    expected = V * (torch.eye(d, dtype=torch.float64) - torch.ones(d, d, dtype=torch.float64) / d)
    assert torch.allclose(scheme_covariance("impulse", K), expected)


def test_box_needs_enough_pixels():
    with pytest.raises(ValueError, match="box-3 needs at least 3 pixels"):
        SCHEMES["box-3"].filters((1, 2), 4, 0.1)


def bumps_like(filters, sigma):
    """Gaussian bumps of width sigma with the filters' own peaks and peak positions."""
    k = filters.shape[-1]
    flat = filters.reshape(len(filters), -1)
    peak, centre = flat.max(dim=1)
    i, j = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    ci, cj = (centre // k)[:, None, None], (centre % k)[:, None, None]
    return peak[:, None, None] * torch.exp(-((i - ci) ** 2 + (j - cj) ** 2) / (2 * sigma**2))


def test_gaussian_bumps_are_deterministic_bumps_at_uniform_centres():
    sigma = 1.2
    filters = draw("gaussian-bump", sigma=sigma)
    assert torch.allclose(filters, bumps_like(filters, sigma), atol=1e-6)
    peaks, centres = filters.reshape(N, -1).max(dim=1)
    assert torch.allclose(peaks, peaks[0])  # one global scale
    counts = torch.bincount(centres, minlength=K * K).double()
    assert (counts / N - 1 / K**2).abs().max() < 0.01


def test_gaussian_bump_moments_are_those_of_the_columns_of_S():
    """Bumps are the columns S[:, c] of the closed form, a uniform c and one scale a:
    E[w w^T] = a^2 S^2 / k^2, E[w] = a S 1 / k^2, with a^2 = k^4 v / ||S||_F^2."""
    sigma = 1.2
    S = C.gaussian(K, sigma)
    d = K * K
    a2 = d * d * V / torch.linalg.matrix_norm(S).item() ** 2
    mean = math.sqrt(a2) * S.sum(dim=1) / d
    expected = a2 * S @ S / d - torch.outer(mean, mean)
    assert torch.allclose(scheme_covariance("gaussian-bump", K, sigma=sigma), expected)
    filters = draw("gaussian-bump", sigma=sigma)
    assert relative_error(C.empirical(filters), expected) < 0.05
    assert relative_error(filters.reshape(N, -1).mean(dim=0)[None], mean[None]) < 0.05
    # not the Gaussian covariance scheme: its covariance is S-like, the bumps' is smoother
    assert relative_error(expected / expected.diagonal().mean(), S) > 0.3


def test_delta_orthogonal_is_the_identity_conv_up_to_sign_and_scale():
    k, channels = 7, 64
    filters = sample_scheme("delta-orthogonal", k, channels, generator=torch.Generator().manual_seed(0))
    scale = math.sqrt(k * k * default_variance(k))
    x = torch.randn(2, channels, 12, 12)
    out = F.conv2d(x, filters[:, None], padding="same", groups=channels)
    signs = filters[:, k // 2, k // 2] / scale
    assert torch.equal(signs.abs(), torch.ones(channels))
    assert torch.allclose(out, x * scale * signs[None, :, None, None], atol=1e-6)
    assert 0 < (signs > 0).sum() < channels  # both signs occur


def test_delta_orthogonal_statistics():
    filters = draw("delta-orthogonal")
    d = K * K
    expected = torch.zeros(d, d, dtype=torch.float64)
    expected[d // 2, d // 2] = d * V
    assert torch.allclose(scheme_covariance("delta-orthogonal", K), expected)
    assert abs(filters.mean(dim=0)[K // 2, K // 2].item()) < 0.02 * math.sqrt(d * V)  # random sign
    assert relative_error(C.empirical(filters), expected) < 1e-3


@pytest.mark.parametrize("shape", [(5, 5), (9, 9), (1, 7)])
def test_untruncated_allpass_filters_are_real_orthogonal_convs(shape):
    full = allpass_filters(shape, 64, torch.Generator().manual_seed(0))
    assert full.dtype == torch.float64
    assert full.shape == (64, GRID * shape[0], GRID * shape[1])
    assert torch.allclose(torch.fft.fft2(full).abs(), torch.ones(()).double(), atol=1e-9)
    x = torch.randn(64, *full.shape[1:], dtype=torch.float64)  # circular conv keeps every norm
    y = torch.fft.ifft2(torch.fft.fft2(x) * torch.fft.fft2(full)).real
    assert torch.allclose(y.pow(2).sum(dim=(1, 2)), x.pow(2).sum(dim=(1, 2)))


def energy_outside_window(full, k):
    """Energy of the filters outside the k x k window around the origin, centred with fftshift."""
    centred = torch.fft.fftshift(full, dim=(1, 2))
    mid = full.shape[1] // 2
    window = centred[:, mid - k // 2: mid + k // 2 + 1, mid - k // 2: mid + k // 2 + 1]
    return 1 - window.pow(2).sum(dim=(1, 2))


@pytest.mark.parametrize("k", [9, 15])
def test_allpass_truncation_error_is_the_stated_energy_lost(k):
    n = 2000
    error = allpass_truncation_error(k, n, generator=torch.Generator().manual_seed(1))
    full = allpass_filters((k, k), n, torch.Generator().manual_seed(1))
    assert error == pytest.approx(energy_outside_window(full, k).mean().item(), abs=1e-9)
    assert error == pytest.approx(0.174, abs=0.01)  # the number allpass_truncation_error states


def test_allpass_filters_are_the_truncated_filters_rescaled():
    k = 9
    filters = sample_scheme("all-pass", k, 16, generator=torch.Generator().manual_seed(2)).double()
    full = allpass_filters((k, k), 16, torch.Generator().manual_seed(2))
    window = torch.fft.fftshift(full, dim=(1, 2))[:, k - k // 2: k + k // 2 + 1, k - k // 2: k + k // 2 + 1]
    scale = filters.pow(2).sum(dim=(1, 2)).sqrt() / window.pow(2).sum(dim=(1, 2)).sqrt()
    assert torch.allclose(filters, window * scale[:, None, None], atol=1e-6)
    assert torch.allclose(filters.pow(2).sum(dim=(1, 2)), torch.tensor(k * k * default_variance(k)).double())


def test_allpass_statistics_against_its_estimated_covariance():
    """No closed form: an independent sample matches the estimate, which is point-symmetric
    (V and -V are equally likely, and -V gives the filter flipped through the centre)."""
    filters = draw("all-pass", n=20_000, seed=3)
    target = scheme_covariance("all-pass", K)
    assert relative_error(C.empirical(filters), target) < 0.08
    flip = torch.arange(K * K - 1, -1, -1)
    assert relative_error(target[flip][:, flip], target) < 0.05
    mean = filters.mean(dim=0)
    assert mean[K // 2, K // 2] > 2 * math.sqrt(V)  # a strong identity part: near delta-orthogonal


@pytest.mark.parametrize("name", PEERS)
def test_scheme_sample_of_peer_schemes(name):
    small = scheme_sample(name, 5, 4, 200, seed=1, sigma=1.5)
    large = scheme_sample(name, 5, 4, 20000, seed=1, sigma=1.5)
    assert large.filters.shape == (4, 5, 5)
    assert large.relative_error < 0.1
    assert large.relative_error <= small.relative_error


def band_model(channels=32, depth=3, kernel=(1, 9)):
    return nn.Sequential(*[nn.Conv2d(channels, channels, kernel, groups=channels, padding="same")
                           for _ in range(depth)])


@pytest.mark.parametrize("name", PEERS)
def test_init_depthwise_with_band_kernels(name):
    model = band_model()
    touched = init_depthwise_(model, name, generator=torch.Generator().manual_seed(0))
    assert len(touched) == 3
    weights = torch.stack([conv.weight.detach()[:, 0] for _, conv in depthwise_convs(model)])
    assert weights.shape == (3, 32, 1, 9)
    assert weights.double().pow(2).mean().item() == pytest.approx(1 / 27, rel=0.15)
    if name in ("impulse", "delta-orthogonal"):
        assert ((weights != 0).sum(dim=(2, 3)) == 1).all()


def test_gaussian_bump_follows_the_depth_schedule():
    """Each layer's bumps have the width of the gaussian scheme's sigma for that layer."""
    model = band_model(channels=64, depth=3, kernel=(9, 9))
    init_depthwise_(model, "gaussian-bump", sigma_first=1.0, sigma_last=3.0,
                    generator=torch.Generator().manual_seed(0))
    for (_, conv), sigma in zip(depthwise_convs(model), (1.0, 2.0, 3.0)):
        filters = conv.weight.detach()[:, 0].double()
        assert torch.allclose(filters, bumps_like(filters, sigma), atol=1e-6)


@pytest.mark.parametrize("name", PEERS)
def test_train_config_accepts_peer_schemes(name):
    assert TrainConfig(init=name).validate().init == name


def test_lab_preset_is_the_frozen_race_measured_in_the_docs():
    """The preset runs what docs/results.md measured with `compare --kernel-size 15 --epochs 1
    --inits default,gaussian,impulse,delta-orthogonal --freeze filters --seeds 0,1,2,3,4`, minus
    delta-orthogonal."""
    from convcov_app import lab

    plan = lab.plan_comparison(lab.PRESETS[lab.PEER_FROZEN].setup)
    assert list(plan.variants) == ["default-frozen", "gaussian-frozen", "impulse-frozen"]
    assert all(v["freeze_filters"] for v in plan.variants.values()) and plan.seeds == [0, 1, 2, 3, 4]
    cli_default = TrainConfig(kernel_size=15, epochs=1)  # compare's defaults: convmixer-64/6, patch 2, ...
    assert plan.base == cli_default.replace(dataset_params={})


def test_lab_page_offers_the_preset_with_its_numbers():
    from convcov_app import lab
    from helpers.pages import assert_clean, run_page

    at = run_page("convcov_app/pages/3_Training_Lab.py", timeout=120)
    at.selectbox(key="lab_preset").set_value(lab.PEER_FROZEN).run()
    assert_clean(at, "peer preset")
    assert at.info[0].value.endswith(lab.PRESETS[lab.PEER_FROZEN].expect)  # the page's widgets match it
    assert (at.number_input(key="lab_seeds").value, at.slider(key="lab_k").value) == (5, 15)
    assert at.multiselect(key="lab_inits").value == ["PyTorch default (uniform)", "Gaussian covariance", "Impulse"]
