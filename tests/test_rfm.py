"""ConvRFM / Deep ConvRFM (convcov_core.rfm): the Laplace patch kernel and its AGOP against brute force,
kernel ridge regression against a direct solve, filters drawn with covariance M, and fits that learn."""

import math

import pytest
import torch
import torch.nn.functional as F

from convcov_core.rfm import ConvRFM, DeepConvRFM, kernel, kernel_agop, laplace_kernel, patch_metric
from convcov_core.rfm.machines import ridge_solutions, sample_patch_filters

Q, C = 3, 2


def random_psd(d: int, rank: int, seed: int) -> torch.Tensor:
    A = torch.randn(d, rank, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return A @ A.T / rank


@pytest.fixture
def tiny():
    """7 two-channel 6 x 5 images and a rank-deficient M on their 3 x 3 patches."""
    X = torch.randn(7, C, 6, 5, generator=torch.Generator().manual_seed(0))
    M = random_psd(C * Q * Q, 12, seed=1)
    return X, M, patch_metric(M, X, Q)


@pytest.fixture(params=["default chunks", "tiny chunks"])
def chunks(request, monkeypatch):
    """Run once as shipped and once with chunks of a few values (many bands, positions and rows)."""
    if request.param == "tiny chunks":
        monkeypatch.setattr(kernel, "CHUNK_ELEMENTS", 7)
        monkeypatch.setattr(kernel, "BAND_ELEMENTS", 50)


def patches(X: torch.Tensor) -> torch.Tensor:
    """Every q x q patch, zero padded: (n, P, c q^2), float64."""
    return F.unfold(X.double(), Q, padding=Q // 2).transpose(1, 2)


def brute_kernel(u: torch.Tensor, v: torch.Tensor, M: torch.Tensor, L: float) -> torch.Tensor:
    """(1/P) sum_p exp(-sqrt((u_p - v_p)^T M (u_p - v_p)) / L) for one pair of unfolded images (P, d)."""
    diff = u - v
    return torch.exp(-torch.einsum("pd,de,pe->p", diff, M, diff).clamp_min(1e-30).sqrt() / L).mean()


def test_laplace_kernel_matches_a_pair_by_pair_computation(tiny, chunks):
    X, M, metric = tiny
    Z = X[:4] + 0.3
    K = laplace_kernel(metric, X, Z)
    P_x, P_z = patches(X), patches(Z)
    expected = torch.tensor([[brute_kernel(a, b, M, metric.bandwidth) for b in P_z] for a in P_x],
                            dtype=torch.float64)
    assert torch.allclose(K, expected, atol=1e-5)


def test_kernel_agop_matches_autograd_through_each_patch(tiny, chunks):
    X, M, metric = tiny
    alpha = torch.randn(len(X), 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    M_new = kernel_agop(metric, X, alpha, n_points=5)
    P_all = patches(X)
    expected = torch.zeros_like(M)
    for x in range(5):  # the AGOP's points: the first 5 images
        p = P_all[x].clone().requires_grad_(True)
        for c in range(alpha.shape[1]):
            # the pair with itself is left out: the Laplace kernel has no gradient at distance 0
            f = sum(alpha[i, c] * brute_kernel(P_all[i], p, M, metric.bandwidth) for i in range(len(X)) if i != x)
            (grad,) = torch.autograd.grad(f, p)  # (P, d): one gradient per patch
            expected += grad.T @ grad
    expected /= 5
    assert torch.allclose(M_new, expected, rtol=1e-4, atol=1e-6 * expected.abs().max().item())


def test_kernel_agop_is_the_identity_map_of_agop_py_at_m_identity():
    """With M = I the AGOP lies in the span of the patches: a zero channel gets a zero row."""
    X = torch.randn(6, 2, 5, 5, generator=torch.Generator().manual_seed(3))
    X[:, 1] = 0
    metric = patch_metric(torch.eye(2 * Q * Q, dtype=torch.float64), X, Q)
    M = kernel_agop(metric, X, torch.randn(6, 2, dtype=torch.float64))
    assert M[Q * Q:].abs().max() == 0 and M[:Q * Q].abs().max() > 0


def test_ridge_solutions_equal_a_direct_solve():
    A = torch.randn(30, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    K, Y = A @ A.T, torch.randn(30, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    for lam, alpha in zip((1e-3, 1.0), ridge_solutions(K, Y, (1e-3, 1.0))):
        assert torch.allclose(alpha, torch.linalg.solve(K + lam * torch.eye(30, dtype=torch.float64), Y),
                              rtol=1e-6, atol=1e-8)


def test_sampled_filters_have_covariance_m():
    """Each entry of the sample covariance of n draws has standard deviation sqrt((M_ii M_jj + M_ij^2) / n);
    every entry lies within 5 of them (a false alarm has probability about 1e-4), while M^2 or the
    identity would be off by hundreds."""
    M, n = random_psd(C * Q * Q, 6, seed=6), 200_000
    W = sample_patch_filters(M, n, C, Q, torch.Generator().manual_seed(7))
    assert W.shape == (n, C, Q, Q)
    flat = W.reshape(n, -1).double()
    S = flat.T @ flat / n
    sd = ((M.diagonal()[:, None] * M.diagonal()[None, :] + M ** 2) / n).sqrt()
    assert ((S - M).abs() / sd).max() < 5


def brightness_task(n: int, seed: int):
    """Images of +-1 brightness (the label) under noise 0.5: separable by any patch."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    X = (2.0 * y - 1)[:, None, None, None] + 0.5 * torch.randn(n, 1, 8, 8, generator=g)
    return X, y


def test_convrfm_learns_a_separable_task_and_keeps_its_history():
    X, y = brightness_task(40, seed=8)
    X_test, y_test = brightness_task(40, seed=9)
    rfm = ConvRFM(patch_size=3, iterations=2, agop_images=10).fit(X, y)
    assert rfm.score(X_test, y_test) >= 90
    assert [h["iteration"] for h in rfm.history] == [0, 1, 2] and rfm.chosen >= 1
    assert rfm.M.shape == (9, 9) and torch.allclose(rfm.M, rfm.M.T)
    assert torch.linalg.eigvalsh(rfm.M).min() > -1e-9 * rfm.M.abs().max()
    base = ConvRFM(patch_size=3, iterations=0).fit(X, y)
    assert torch.equal(base.M, torch.eye(9, dtype=torch.float64)) and base.chosen == 0


def test_deep_convrfm_draws_its_filters_from_each_layer_m():
    X, y = brightness_task(40, seed=10)
    deep = DeepConvRFM(layers=2, patch_size=3, iterations=1, filters=8, seed=3).fit(X, y)
    expected = sample_patch_filters(deep.M[0], 8, 1, 3, torch.Generator().manual_seed(3))
    assert torch.equal(deep.weights[0], expected)
    assert [m.shape for m in deep.M] == [(9, 9), (8 * 9, 8 * 9)]
    assert deep.transform(X).shape == (40, 8, 4, 4)
    X_test, y_test = brightness_task(40, seed=11)
    assert deep.score(X_test, y_test) >= 90


def test_deep_convrfm_reuses_a_fitted_first_layer():
    X, y = brightness_task(30, seed=12)
    first = ConvRFM(patch_size=3, iterations=1).fit(X, y)
    deep = DeepConvRFM(layers=2, patch_size=3, iterations=1, filters=4).fit(X, y, first_layer=first)
    assert deep.machines[0] is first


@pytest.mark.parametrize("make, message", [
    (lambda: ConvRFM(patch_size=4), "odd"),
    (lambda: ConvRFM(iterations=-1), "iterations"),
    (lambda: ConvRFM(bandwidth=0), "bandwidth"),
    (lambda: ConvRFM(bandwidth=float("inf")), "bandwidth must be a finite number > 0"),  # was "M is zero"
    (lambda: ConvRFM(regularizers=()), "regularizers"),
    (lambda: ConvRFM(val_fraction=1.0).fit(*brightness_task(10, 0)), "val_fraction"),
    (lambda: ConvRFM().fit(torch.zeros(5, 8, 8), torch.zeros(5, dtype=torch.long)), "(n, c, H, W)"),
    (lambda: ConvRFM().fit(torch.zeros(5, 1, 8, 8), torch.zeros(4, dtype=torch.long)), "one non-negative"),
    (lambda: ConvRFM().predict(torch.zeros(2, 1, 8, 8)), "fit the ConvRFM"),
    (lambda: DeepConvRFM(filters=0), "filters"),
])
def test_bad_input_is_refused_with_a_message(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_identical_patches_count_as_distance_zero():
    """Float32 rounding of |a|^2 + |b|^2 - 2 a.b leaves ~1e-6 |a|^2 for a = b: read as 0, so K(x, x) = 1."""
    X = torch.randn(3, 1, 6, 6, generator=torch.Generator().manual_seed(13)) * 100
    metric = patch_metric(torch.eye(9, dtype=torch.float64), X, 3)
    assert math.isclose(laplace_kernel(metric, X, X).diagonal().min().item(), 1.0, rel_tol=1e-3)


def test_noisy_mnist_takes_a_random_subset_of_each_split():
    """The comparison trains every model on n_train images of noisy-mnist (the CNN through its config)."""
    from convcov_core import data

    train_x, train_y, test_x, _, _ = data.load_dataset("noisy-mnist", canvas_size=30, n_train=50, n_test=20, seed=1)
    assert train_x.shape == (50, 1, 30, 30) and test_x.shape == (20, 1, 30, 30)
    assert len(train_y.unique()) > 5  # drawn across the classes, not the first 50 (all zeros)


def test_a_convrfm_beside_a_cnn_fits_on_images_of_every_class():
    """mnist5k lists its training digits by class: the page's ConvRFM draws its images at random."""
    from convcov_core import model_pairs
    from convcov_core.rfm import against_cnn

    machine, accuracy = against_cnn.fit_on(model_pairs.cnn_config("mnist5k"), 60, 3, iterations=0)
    assert machine.classes == 10 and accuracy > 30  # chance is 10%


def test_the_bandwidth_leaves_out_identical_background_patches():
    """Digits on a blank background: most same-position patch pairs are identical (distance 0); the
    median of the others sets L, so the kernel is not a 0/1 match count."""
    X = torch.zeros(6, 1, 8, 8)
    X[:, 0, 3:5, 3:5] = torch.arange(1.0, 7.0)[:, None, None]
    metric = patch_metric(torch.eye(9, dtype=torch.float64), X, 3)
    assert metric.bandwidth > 0.1
    K = laplace_kernel(metric, X, X)
    assert 0.6 < K[0, 1] < 1 and K[0, 1] > K[0, 5]  # nearer brightness, more similar
