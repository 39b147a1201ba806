"""Sampled filters have the target covariance (dense and Kronecker paths).

Tolerance. For n i.i.d. draws of a zero-mean Gaussian with covariance S, an entry of the unbiased
sample covariance has standard error se_ab = sqrt((S_aa S_bb + S_ab^2) / (n - 1)) (Isserlis). We
require every entry to lie within z = 6 standard errors: with at most 15^4 ~ 51,000 entries a union
bound puts the chance of a false alarm below 51,000 * 2e-9 = 1e-4 per check, while the same check
rejects samples drawn with a 10% wrong sigma (tested below), so it has power.
"""

import pytest
import torch

from convcov_core import covariance as C
from convcov_core.sampling import dense_factor, sample_filters

N = 100_000
Z_MAX = 6.0


def z_scores(samples, S):
    """|S_hat - S| / se entrywise for the unbiased sample covariance of `samples`."""
    S_hat = C.empirical(samples)
    d = S.diagonal()
    se = ((torch.outer(d, d) + S**2) / (samples.shape[0] - 1)).sqrt()
    return (S_hat - S).abs() / se


@pytest.mark.parametrize("k,sigma", [(3, 0.5), (5, 1.0), (9, 2.0), (9, 6.0)])
def test_dense_samples_match_target(k, sigma):
    S = C.gaussian(k, sigma)
    x = sample_filters(S, N, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    assert x.shape == (N, k, k)
    assert z_scores(x, S).max() < Z_MAX
    assert x.mean(0).abs().max() < Z_MAX / N**0.5


@pytest.mark.parametrize("k,sigma,scale", [(3, 0.8, 1.0), (7, 1.5, 0.01), (11, 3.0, 1.0), (15, 4.0, 2.5)])
def test_kronecker_samples_match_target(k, sigma, scale):
    cov = C.gaussian(k, sigma, structured=True).scaled(scale)
    x = sample_filters(cov, N, generator=torch.Generator().manual_seed(k))
    assert x.shape == (N, k, k) and x.dtype == torch.float32
    assert z_scores(x, cov.dense()).max() < Z_MAX


def test_check_has_power_against_a_wrong_sigma():
    x = sample_filters(C.gaussian(5, 1.1, structured=True), N, generator=torch.Generator().manual_seed(0))
    assert z_scores(x, C.gaussian(5, 1.0)).max() > Z_MAX


def test_non_gaussian_learned_covariance():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(25, 60, dtype=torch.float64, generator=g)
    S = X @ X.T / 60  # a generic full-rank PSD covariance, no Kronecker structure
    x = sample_filters(S, N, generator=g, dtype=torch.float64)
    assert z_scores(x, S).max() < Z_MAX


def test_semidefinite_covariance_samples_stay_in_its_column_space():
    v = torch.randn(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    S = v @ v.T  # rank 2
    L = dense_factor(S)
    torch.testing.assert_close(L @ L.T, S, atol=1e-7, rtol=0)
    x = sample_filters(S, 20_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    flat = x.reshape(-1, 9)
    P = v @ torch.linalg.pinv(v)  # projector on the column space; jitter adds at most ~1e-5 outside it
    torch.testing.assert_close(flat @ P.T, flat, atol=1e-4, rtol=0)


def test_slightly_indefinite_covariance_falls_back_to_eigh_square_root():
    V, _ = torch.linalg.qr(torch.randn(9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    w = torch.ones(9, dtype=torch.float64)
    w[0] = -1e-7  # rounding-level negative eigenvalue: Cholesky fails even with jitter
    S = (V * w) @ V.T
    L = dense_factor(S)
    torch.testing.assert_close(L @ L.T, (V * w.clamp_min(0)) @ V.T, atol=1e-12, rtol=0)


def test_ill_conditioned_gaussian_still_samples():
    x = sample_filters(C.gaussian(15, 10.0), 1000, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(x).all()


def test_generator_makes_draws_repeatable():
    cov = C.gaussian(5, 1.0, structured=True)
    a = sample_filters(cov, 10, generator=torch.Generator().manual_seed(7))
    b = sample_filters(cov, 10, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_large_kernel_kronecker_path_runs():
    x = sample_filters(C.gaussian(101, 3.0, structured=True), 200)
    assert x.shape == (200, 101, 101) and torch.isfinite(x).all()


def test_non_psd_is_refused_with_advice():
    S = C.gaussian(3, 1.0)
    S[0, 0] = -5.0
    with pytest.raises(ValueError, match="nearest_psd"):
        sample_filters(S, 10)


@pytest.mark.parametrize("n", [-1, 2.5, "ten"])
def test_bad_counts(n):
    with pytest.raises(ValueError, match="number of filters"):
        sample_filters(C.gaussian(3, 1.0), n)


def test_bad_matrix():
    with pytest.raises(ValueError, match="perfect square"):
        sample_filters(torch.eye(8), 4)
