"""The Laplace patch kernel of Laplace-ConvRFM (seed 001, Algorithm 1), its kernel matrices, and the
patch-AGOP of a kernel predictor built on it, all computed in chunks.

    K_M(x, z) = (1/P) sum_p exp(-||x_p - z_p||_M / L),        ||v||_M = sqrt(v^T M v)

x_p: the q x q patch of image x (c channels, zero padding q // 2, so P = H W positions) at position p,
flattened (channel, row, column) as F.unfold orders it; L: the bandwidth. This is the seed's
one-hidden-layer CNNGP formula with its dual activation replaced by the Mahalanobis Laplace kernel.
With M = R R^T, ||v||_M = ||R^T v||, and R^T x_p at every p is conv2d(x, R^T): patches are never
unfolded.

Patch-AGOP of f_c(x) = sum_i alpha_ic K_M(x_i, x), in closed form. With u = R^T x_p, u_i = R^T x_i,p,
d_i = ||u - u_i|| and w_i = exp(-d_i / L) / (L P d_i) (w_i = 0 where d_i = 0: the Laplace kernel has
no gradient there, RFM's convention),

    grad_{x_p} f_c = R g_c,        g_c = sum_i alpha_ic w_i u_i - (sum_i alpha_ic w_i) u,
    AGOP = (1/n) sum_x sum_p sum_c (R g_c)(R g_c)^T = R G R^T / n,    G = sum_{x, p, c} g_c g_c^T:

agop.py's identity M = W^T G W / n with W = R^T (gradients taken at the conv output, mapped back).

Memory: positions are taken a band of image rows at a time (the transformed maps of one band, about
BAND_ELEMENTS floats) and, inside a band, a few positions by a few images against all of the other
set (about CHUNK_ELEMENTS pair values, small enough for a CPU cache: 8x faster than one big step on
2 cores). The peak is a few bands' maps, not the n c q^2 P floats of unfolding every patch of every
image, the seed's workaround (benchmarks/rfm_memory.py measures both).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..sampling import symmetric_sqrt_factor

Tensor = torch.Tensor

CHUNK_ELEMENTS = 2**19  # pair x position values computed at once
BAND_ELEMENTS = 2**23  # floats of transformed maps held per band of rows
#: Patch pairs whose squared distance is below this share of their squared norms count as identical:
#: no gradient in the AGOP (float32 rounding leaves about 1e-6 there for a patch and itself); left
#: out of the bandwidth's median (relative to the largest distance there).
IDENTICAL = 1e-5
_RANK_TOL = 1e-6  # columns of R below this share of its largest column are dropped


@dataclass(frozen=True)
class PatchMetric:
    """The metric ||v||_M = ||R^T v|| on q x q patches of c-channel images and the bandwidth L.

    factor: R (c q^2, r) with R R^T = M, float32, zero columns dropped (r = rank of M).
    """

    factor: Tensor
    channels: int
    patch_size: int
    bandwidth: float

    @property
    def weight(self) -> Tensor:
        """R^T as conv2d filters (r, c, q, q): conv2d(x, weight) holds R^T x_p at every position p."""
        q = self.patch_size
        return self.factor.T.reshape(-1, self.channels, q, q).contiguous()


def metric_factor(M: Tensor) -> Tensor:
    """R (d, r) float32 with R R^T = M (sampling.symmetric_sqrt_factor), without its zero columns."""
    R = symmetric_sqrt_factor(torch.as_tensor(M, dtype=torch.float64))
    norms = R.norm(dim=0)
    return R[:, norms > _RANK_TOL * norms.max().clamp_min(1e-300)].float()


def patch_metric(M: Tensor, X: Tensor, patch_size: int, bandwidth: float = 1.0) -> PatchMetric:
    """The metric of M on X's q x q patches, L = bandwidth x the median distance ||x_p - z_p||_M
    between the same positions of neighbouring images of X (the first 65), identical patches left
    out (the blank background of digits would make it 0): a scale-free bandwidth."""
    factor = metric_factor(M)
    if factor.shape[1] == 0:
        raise ValueError("M is zero: the predictor's gradients vanished, there is no patch metric to learn")
    probe = PatchMetric(factor, X.shape[1], patch_size, 1.0)
    sample = X[: min(len(X), 65)]
    if len(sample) < 2:
        raise ValueError("the bandwidth needs at least 2 images")
    maps = transformed_maps(sample, probe)
    distances = (maps[:-1] - maps[1:]).norm(dim=1).flatten()
    distances = distances[distances > IDENTICAL * distances.max()]
    if len(distances) == 0:
        raise ValueError("every patch of the first images is the same: no scale for the bandwidth")
    return PatchMetric(factor, X.shape[1], patch_size, bandwidth * distances.median().item())


def transformed_maps(X: Tensor, metric: PatchMetric, rows: range | None = None) -> Tensor:
    """R^T x_p at every position p of the output rows `rows` (default all): (n, r, len(rows), W)."""
    pad = metric.patch_size // 2
    if rows is None:
        return F.conv2d(X, metric.weight, padding=pad)
    height = X.shape[-2]  # the input rows those outputs read, and the zero rows beyond the image
    top, bottom = rows.start - pad, rows.stop + pad
    X = F.pad(X[:, :, max(top, 0): min(bottom, height)], (0, 0, max(-top, 0), max(bottom - height, 0)))
    return F.conv2d(X, metric.weight, padding=(0, pad))


class _Band:
    """One band of positions of a set of images: maps (p, n, r), their transposes (p, r, n) and squared
    norms (p, n)."""

    def __init__(self, X: Tensor, metric: PatchMetric, rows: range):
        self.maps = transformed_maps(X, metric, rows).flatten(2).permute(2, 0, 1).contiguous()
        self.transposed = self.maps.transpose(1, 2).contiguous()
        self.norms = self.maps.pow(2).sum(-1)

    def squared_distances(self, ps: slice, rows: slice, other: "_Band") -> Tensor:
        """||a_p,i - b_p,j||^2 for the positions ps, images `rows` of this band, all of other's: (p, m, n)."""
        d2 = torch.baddbmm(other.norms[ps, None, :], self.maps[ps, rows], other.transposed[ps], alpha=-2.0)
        return d2.add_(self.norms[ps, rows, None]).clamp_min_(0.0)


def _bands(X_a: Tensor, X_b: Tensor, metric: PatchMetric):
    """(band of X_a, band of X_b) for each band of output rows, holding about BAND_ELEMENTS floats."""
    height, width = X_a.shape[-2:]
    per_row = width * (len(X_a) + len(X_b)) * metric.factor.shape[1]
    step = max(1, BAND_ELEMENTS // per_row)
    for start in range(0, height, step):
        rows = range(start, min(start + step, height))
        a = _Band(X_a, metric, rows)
        yield a, a if X_b is X_a else _Band(X_b, metric, rows)


def _chunks(total: int, size: int):
    return [slice(start, min(start + size, total)) for start in range(0, total, max(1, size))]


def _pair_steps(n_positions: int, m: int, n: int):
    """(position slices, row slices) covering positions x m rows against n columns in steps of about
    CHUNK_ELEMENTS values: up to 16 positions by as many rows as fit."""
    rows = max(1, min(m, CHUNK_ELEMENTS // (16 * n)))
    positions = max(1, min(n_positions, CHUNK_ELEMENTS // (rows * n)))
    return _chunks(n_positions, positions), _chunks(m, rows)


def laplace_kernel(metric: PatchMetric, X_a: Tensor, X_b: Tensor) -> Tensor:
    """K_M(X_a, X_b): (n_a, n_b) float64, K[i, j] = (1/P) sum_p exp(-||a_i,p - b_j,p||_M / L)."""
    X_a, X_b = _images(X_a, metric), _images(X_b, metric)
    K = torch.zeros(len(X_a), len(X_b), dtype=torch.float64)
    for a, b in _bands(X_a, X_b, metric):
        positions, rows = _pair_steps(a.maps.shape[0], len(X_a), len(X_b))
        for ps in positions:
            for rs in rows:
                K[rs] += a.squared_distances(ps, rs, b).sqrt_().mul_(-1.0 / metric.bandwidth).exp_().sum(0)
    return K / (X_a.shape[-2] * X_a.shape[-1])


def kernel_agop(metric: PatchMetric, X: Tensor, alpha: Tensor, n_points: int | None = None) -> Tensor:
    """Patch-AGOP of f(x) = alpha^T K_M(X, x) (alpha: n x C) over x in X[:n_points] (default all):
    (c q^2, c q^2) float64, in closed form (module docstring)."""
    X = _images(X, metric)
    alpha = torch.as_tensor(alpha, dtype=torch.float32)
    n, C = alpha.shape
    if n != len(X):
        raise ValueError(f"alpha has {n} rows for {len(X)} images")
    n_points = len(X) if n_points is None else min(n_points, len(X))
    r = metric.factor.shape[1]
    G = torch.zeros(r, r, dtype=torch.float64)
    for band, _ in _bands(X, X, metric):
        positions, rows = _pair_steps(band.maps.shape[0], n_points, n)
        step = max(1, min(positions[0].stop, BAND_ELEMENTS // (n * C * r)))  # alpha (x) u fits a band
        for ps in _chunks(band.maps.shape[0], step):
            weighted = (band.maps[ps, :, None, :] * alpha[None, :, :, None]).reshape(-1, n, C * r)
            for rs in rows:
                G += _gradient_gram(band, ps, rs, weighted, alpha, metric.bandwidth)
    P = X.shape[-2] * X.shape[-1]
    R = metric.factor.double()
    return R @ G @ R.T / (n_points * (metric.bandwidth * P) ** 2)


def _gradient_gram(band: _Band, ps: slice, rs: slice, weighted: Tensor, alpha: Tensor, bandwidth: float) -> Tensor:
    """sum over the positions ps, points rs and classes of g g^T, g_c = sum_i alpha_ic w_i u_i -
    (sum_i alpha_ic w_i) v (w without its constant 1 / (L P); weighted = alpha (x) u); identical
    patches (IDENTICAL) get w = 0."""
    d2 = band.squared_distances(ps, rs, band)
    identical = d2 <= IDENTICAL * (band.norms[ps, rs, None] + band.norms[ps, None, :])
    d = d2.sqrt_()
    w = torch.exp(-d / bandwidth).div_(d).masked_fill_(identical, 0.0)
    v = band.maps[ps, rs]
    C, r = alpha.shape[1], v.shape[-1]
    g = torch.bmm(w, weighted).view(*w.shape[:2], C, r) - (w @ alpha)[..., None] * v[:, :, None, :]
    g = g.reshape(-1, r)
    return (g.T @ g).double()


def _images(X: Tensor, metric: PatchMetric) -> Tensor:
    """X as float32 (n, c, H, W) with the metric's channel count, else ValueError."""
    X = torch.as_tensor(X)
    if X.dim() != 4 or X.shape[1] != metric.channels or X.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (n, {metric.channels}, H, W) tensor, got {tuple(X.shape)}")
    return X.float()
