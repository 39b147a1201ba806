"""Closed forms, views, empirical covariance, PSD projection, transfer and fit, against independent
computations (explicit loops over pixel indices) and as hypothesis properties."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convcov_core import covariance as C


def loop_gaussian(k, sigma):
    """S[k*i+j, k*l+m] = exp(-((i-l)^2 + (j-m)^2) / (2 sigma^2)), written out index by index."""
    S = torch.empty(k * k, k * k, dtype=torch.float64)
    for i in range(k):
        for j in range(k):
            for l in range(k):
                for m in range(k):
                    S[k * i + j, k * l + m] = math.exp(-((i - l) ** 2 + (j - m) ** 2) / (2 * sigma**2))
    return S


def random_psd(k, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(k * k, 3 * k * k, dtype=torch.float64, generator=g)
    return X @ X.T / X.shape[1]


@pytest.mark.parametrize("k,sigma", [(1, 1.0), (3, 0.5), (5, 1.7), (8, 3.0)])
def test_gaussian_matches_index_formula(k, sigma):
    S = C.gaussian(k, sigma)
    assert S.dtype == torch.float64 and S.shape == (k * k, k * k)
    torch.testing.assert_close(S, loop_gaussian(k, sigma), rtol=0, atol=1e-15)
    torch.testing.assert_close(S.diagonal(), torch.ones(k * k, dtype=torch.float64))


def test_gaussian_factor_is_the_1d_kernel():
    k, sigma = 6, 1.3
    A = C.gaussian_factor(k, sigma)
    for i in range(k):
        for l in range(k):
            assert A[i, l].item() == pytest.approx(math.exp(-((i - l) ** 2) / (2 * sigma**2)), abs=1e-15)


def test_structured_gaussian_is_the_same_matrix():
    cov = C.gaussian(7, 2.0, structured=True)
    assert isinstance(cov, C.KroneckerCovariance) and cov.kernel_size == 7
    torch.testing.assert_close(cov.dense(), C.gaussian(7, 2.0))
    assert cov.mean_variance() == pytest.approx(1.0)
    torch.testing.assert_close(cov.scaled(0.25).dense(), 0.25 * C.gaussian(7, 2.0))


def test_kronecker_eigenvalues_are_those_of_the_dense_matrix():
    cov = C.gaussian(6, 1.4, structured=True).scaled(3.0)
    dense = torch.linalg.eigvalsh(cov.dense()).sort(descending=True).values
    torch.testing.assert_close(cov.eigenvalues(), dense.clamp_min(0), atol=1e-10, rtol=1e-8)


def test_views_follow_their_index_definitions():
    k = 4
    S = torch.arange(k**4, dtype=torch.float64).reshape(k * k, k * k)
    B, T = C.to_blocks(S), C.to_tiled(S)
    for i in range(k):
        for j in range(k):
            for l in range(k):
                for m in range(k):
                    assert B[i, j, l, m] == S[k * i + j, k * l + m]
                    assert T[i * k + l, j * k + m] == B[i, j, l, m]
    torch.testing.assert_close(C.from_blocks(B), S)
    torch.testing.assert_close(C.from_tiled(T), S)


def test_tiled_block_of_gaussian_is_a_bump_centred_on_its_pixel():
    k = 7
    T = C.to_tiled(C.gaussian(k, 1.0))
    for i, j in [(0, 0), (3, 3), (6, 2)]:
        tile = T[i * k:(i + 1) * k, j * k:(j + 1) * k]
        assert divmod(int(tile.argmax()), k) == (i, j)


def test_empirical_against_torch_cov_and_outer_products():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(50, 1, 3, 3, generator=g)
    flat = W.reshape(50, 9).double()
    torch.testing.assert_close(C.empirical(W), torch.cov(flat.T))
    outer = sum(torch.outer(w, w) for w in flat) / 50
    torch.testing.assert_close(C.empirical(W[:, 0], centered=False), outer)


def test_nearest_psd_clips_negative_eigenvalues():
    S = C.gaussian(3, 1.0)
    w, V = torch.linalg.eigh(S)
    w[0] = -0.5
    bad = (V * w) @ V.T
    assert not C.is_psd(bad)
    P = C.nearest_psd(bad)
    assert C.is_psd(P)
    expected = (V * w.clamp_min(0)) @ V.T
    torch.testing.assert_close(P, expected)
    assert torch.linalg.eigvalsh(C.nearest_psd(bad, eps=1e-3)).min() >= 1e-3 - 1e-12


def test_resize_identity_and_stretch():
    S = random_psd(5)
    torch.testing.assert_close(C.resize(S, 5), S)
    # Aligned-corner interpolation of a Gaussian stretches its coordinates by (k'-1)/(k-1).
    big = C.resize(C.gaussian(5, 1.0), 9)
    assert C.is_psd(big)
    assert C.pearson(big, C.gaussian(9, 2.0)) > 0.98  # linear interpolation of a bump: close, not exact
    assert C.pearson(big, C.gaussian(9, 1.0)) < 0.95
    small = C.resize(C.gaussian(9, 2.0), 5)
    assert C.pearson(small, C.gaussian(5, 1.0)) > 0.999


def test_transfer_interpolates_linearly_in_depth():
    S = [random_psd(3, seed) for seed in range(3)]
    out = C.transfer(S, 3, 5)
    torch.testing.assert_close(out[0], S[0])
    torch.testing.assert_close(out[1], (S[0] + S[1]) / 2)
    torch.testing.assert_close(out[2], S[1])
    torch.testing.assert_close(out[3], (S[1] + S[2]) / 2)
    torch.testing.assert_close(out[4], S[2])
    assert all(x.shape == (9, 9) for x in out)
    shallow = C.transfer(S, 3, 1)
    torch.testing.assert_close(shallow[0], S[0])
    torch.testing.assert_close(C.transfer(S[:1], 3, 4)[3], S[0])


def test_depth_schedule_is_linear():
    assert C.depth_schedule(1.0, 3.0, 5) == pytest.approx([1.0, 1.5, 2.0, 2.5, 3.0])
    assert C.depth_schedule(2.0, 4.0, 1) == [2.0]


def test_fit_sigma_on_a_noisy_learned_covariance():
    g = torch.Generator().manual_seed(0)
    k, sigma = 7, 1.6
    from convcov_core.sampling import sample_filters

    S_hat = C.empirical(sample_filters(C.gaussian(k, sigma), 3000, generator=g, dtype=torch.float64))
    fitted, r = C.fit_sigma(S_hat * 0.01)  # scale must not matter
    assert fitted == pytest.approx(sigma, rel=0.05)
    assert r > 0.95
    sigma_iid, _ = C.fit_sigma(C.empirical(torch.randn(3000, k, k, generator=g)))
    assert sigma_iid < 0.4  # i.i.d. filters: identity covariance, the sigma -> 0 limit
    checker = torch.tensor([(-1.0) ** (i + j) for i in range(k) for j in range(k)], dtype=torch.float64)
    _, r_checker = C.fit_sigma(torch.outer(checker, checker) + torch.eye(k * k, dtype=torch.float64))
    assert r_checker < 0.5  # long-range alternating structure is nothing like a Gaussian bump


def test_effective_rank_extremes():
    assert C.effective_rank(torch.eye(9, dtype=torch.float64)) == pytest.approx(9.0)
    v = torch.ones(9, dtype=torch.float64)
    assert C.effective_rank(torch.outer(v, v)) == pytest.approx(1.0)
    cov = C.gaussian(5, 1.2, structured=True)
    assert C.effective_rank(cov) == pytest.approx(C.effective_rank(cov.dense()), rel=1e-9)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_bad_kernel_sizes(k):
    with pytest.raises(ValueError, match="kernel size"):
        C.gaussian(k, 1.0)


def test_even_kernel_refused_where_odd_is_needed():
    with pytest.raises(ValueError, match="odd"):
        C.check_kernel_size(4, odd=True)
    assert C.check_kernel_size(5, odd=True) == 5


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf"), "wide"])
def test_bad_sigmas(sigma):
    with pytest.raises(ValueError, match="sigma"):
        C.gaussian(5, sigma)
    with pytest.raises(ValueError, match="sigma"):
        C.depth_schedule(sigma, 2.0, 4)


@pytest.mark.parametrize(
    "S,message",
    [
        (torch.ones(4, 5), "square"),
        (torch.ones(8, 8), "perfect square"),
        (torch.tensor([[1.0, 2.0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "symmetric"),
        (torch.full((4, 4), float("nan")), "NaN"),
    ],
)
def test_bad_matrices(S, message):
    with pytest.raises(ValueError, match=message):
        C.validate_covariance(S)
    with pytest.raises(ValueError):
        C.resize(S, 3)


def test_bad_filters_and_depth():
    with pytest.raises(ValueError, match="square k x k filters only"):
        C.empirical(torch.randn(10, 3, 5))
    with pytest.raises(ValueError, match="depthwise"):
        C.empirical(torch.randn(10, 3, 5, 5))
    with pytest.raises(ValueError, match="2 filters"):
        C.empirical(torch.randn(1, 3, 3))
    with pytest.raises(ValueError, match="depth"):
        C.depth_schedule(1.0, 2.0, 0)
    with pytest.raises(ValueError, match="no learned covariances"):
        C.transfer([], 3, 2)


# --- properties ----------------------------------------------------------------------------------

kernel_sizes = st.integers(min_value=1, max_value=11)
sigmas = st.floats(min_value=0.1, max_value=10.0)


@settings(max_examples=40, deadline=None)
@given(k=kernel_sizes, sigma=sigmas)
def test_property_gaussian_is_symmetric_psd_kronecker(k, sigma):
    S = C.gaussian(k, sigma)
    A = C.gaussian_factor(k, sigma)
    torch.testing.assert_close(S, torch.kron(A, A))
    assert torch.equal(S, S.T)
    torch.testing.assert_close(S.diagonal(), torch.ones(k * k, dtype=torch.float64))
    w = torch.linalg.eigvalsh(S)
    assert w.min() >= -1e-10 * w.max()


@settings(max_examples=40, deadline=None)
@given(k=kernel_sizes, seed=st.integers(0, 10_000))
def test_property_views_round_trip(k, seed):
    S = torch.randn(k * k, k * k, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(C.from_tiled(C.to_tiled(S)), S)
    assert torch.equal(C.from_blocks(C.to_blocks(S)), S)
    assert torch.equal(C.to_tiled(C.from_tiled(S)), S)


@settings(max_examples=25, deadline=None)
@given(k=st.integers(2, 9), sigma=st.floats(0.3, 6.0))
def test_property_resize_same_size_is_identity(k, sigma):
    S = C.gaussian(k, sigma)
    torch.testing.assert_close(C.resize(S, k), S, atol=1e-10 * k * k, rtol=0)


@settings(max_examples=25, deadline=None)
@given(k=st.integers(3, 11), new_k=st.integers(1, 15), sigma=sigmas)
def test_property_resize_is_psd_and_sized(k, new_k, sigma):
    out = C.resize(C.gaussian(k, sigma), new_k)
    assert out.shape == (new_k**2, new_k**2)
    assert torch.linalg.eigvalsh(out).min() >= -1e-10


@settings(max_examples=25, deadline=None)
@given(k=st.integers(5, 11), sigma=st.floats(0.5, 5.0), scale=st.floats(1e-4, 1e4))
def test_property_fit_sigma_recovers_sigma(k, sigma, scale):
    fitted, r = C.fit_sigma(scale * C.gaussian(k, sigma))
    assert fitted == pytest.approx(sigma, rel=1e-4)
    assert r == pytest.approx(1.0, abs=1e-9)


def _resize_by_interpolating_blocks(S, new_k):
    """The transfer as DESIGN.md states it: interpolate the block tensor's four axes, then project."""
    k = C.kernel_size_of(S)
    B = C.to_blocks(S)
    for axis in range(4):
        moved = B.movedim(axis, -1)
        flat = torch.nn.functional.interpolate(moved.reshape(-1, 1, k), size=new_k, mode="linear",
                                               align_corners=True)
        B = flat.reshape(*moved.shape[:-1], new_k).movedim(-1, axis)
    return C.nearest_psd(C.from_blocks(B))


@pytest.mark.parametrize("k, new_k", [(3, 9), (9, 5), (5, 31), (9, 2)])
def test_resize_equals_interpolating_the_blocks_then_projecting(k, new_k):
    g = torch.Generator().manual_seed(k * new_k)
    W = torch.randn(40, k * k, dtype=torch.float64, generator=g)
    learned = W.T @ W / 40  # PSD, rank-deficient above k = 6
    not_psd = learned - 0.5 * learned.diagonal().mean() * torch.eye(k * k, dtype=torch.float64)
    for S in (learned, not_psd):
        torch.testing.assert_close(C.resize(S, new_k), _resize_by_interpolating_blocks(S, new_k),
                                   atol=1e-10, rtol=1e-9)


def test_interpolation_matrix_keeps_the_ends_and_rows_sum_to_one():
    P = C.interpolation_matrix(5, 9)
    assert P.shape == (9, 5)
    torch.testing.assert_close(P.sum(dim=1), torch.ones(9, dtype=torch.float64))
    assert P[0, 0] == 1 and P[-1, -1] == 1 and P[2, 1] == 1  # 9 points on 5: every other one is a node
