"""Filter covariances: closed forms, flat/block/tiled views, empirical estimates, PSD, transfer, fit.

Notation (DESIGN.md section 2). A k x k filter F is flattened row-major, f[k*i + j] = F[i, j]; its
covariance is the flat k^2 x k^2 matrix S. The block form is B[i, j, l, m] = S[k*i + j, k*l + m] and
the tiled display view is T[i*k + l, j*k + m] = B[i, j, l, m].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .validation import whole_number

Tensor = torch.Tensor

_NON_SQUARE = "convcov reads covariances of square k x k filters only"


# ---------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------


def check_kernel_size(kernel_size: int, *, odd: bool = False) -> int:
    """Return `kernel_size` as an int, or raise ValueError if it is not a usable kernel size."""
    k = whole_number(kernel_size, "kernel size", 1)
    if odd and k % 2 == 0:
        raise ValueError(f"kernel size must be odd so the filter has a centre pixel, got {k}")
    return k


def check_sigma(sigma: float, name: str = "sigma") -> float:
    """Return `sigma` as a float, or raise ValueError unless it is finite and > 0."""
    try:
        s = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {sigma!r}") from None
    if not math.isfinite(s) or s <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {sigma!r}")
    return s


def kernel_size_of(S: Tensor) -> int:
    """k for a flat k^2 x k^2 covariance; ValueError if S is not square or its side is not a square."""
    if S.dim() != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"a covariance must be a square matrix, got shape {tuple(S.shape)}")
    n = S.shape[0]
    k = math.isqrt(n)
    if k * k != n or n == 0:
        raise ValueError(
            f"a filter covariance is k^2 x k^2, and side {n} is not a perfect square: {_NON_SQUARE}"
        )
    return k


def validate_covariance(S, *, atol: float = 1e-6) -> Tensor:
    """Return S as a float64 tensor after checking it is a finite, symmetric k^2 x k^2 matrix.

    Positive semi-definiteness is not required here (see `is_psd` / `nearest_psd`).
    """
    S = torch.as_tensor(S).to(torch.float64)
    kernel_size_of(S)
    if not torch.isfinite(S).all():
        raise ValueError("covariance contains NaN or infinite values")
    scale = max(S.abs().max().item(), 1e-300)
    if not torch.allclose(S, S.T, rtol=0.0, atol=atol * scale):
        asym = (S - S.T).abs().max().item()
        raise ValueError(f"covariance must be symmetric (max |S - S^T| = {asym:.3g})")
    return S


def is_psd(S: Tensor, *, tol: float = 1e-9) -> bool:
    """True when the smallest eigenvalue of symmetric S is >= -tol * max |eigenvalue|."""
    w = torch.linalg.eigvalsh(S.to(torch.float64))
    return bool(w.min() >= -tol * max(w.abs().max().item(), 1e-300))


# ---------------------------------------------------------------------------------------------
# Closed form
# ---------------------------------------------------------------------------------------------


def gaussian_factor(kernel_size: int, sigma: float) -> Tensor:
    """The k x k factor A[i, l] = exp(-(i - l)^2 / (2 sigma^2)), so that gaussian(k, s) = kron(A, A)."""
    k = check_kernel_size(kernel_size)
    s = check_sigma(sigma)
    idx = torch.arange(k, dtype=torch.float64)
    return torch.exp(-((idx[:, None] - idx[None, :]) ** 2) / (2 * s * s))


@dataclass(frozen=True)
class KroneckerCovariance:
    """The covariance scale * kron(A, A) of a k x k filter, stored as its k x k factor A.

    Sampling and eigenvalues cost O(k^3) instead of the O(k^6) of the dense k^2 x k^2 matrix.
    """

    factor: Tensor
    scale: float = 1.0

    def __post_init__(self):
        A = torch.as_tensor(self.factor).to(torch.float64)
        if A.dim() != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"Kronecker factor must be square, got shape {tuple(A.shape)}: {_NON_SQUARE}")
        if not torch.isfinite(A).all() or not torch.allclose(A, A.T):
            raise ValueError("Kronecker factor must be finite and symmetric")
        check_sigma(self.scale, "scale")
        object.__setattr__(self, "factor", A)

    @property
    def kernel_size(self) -> int:
        return self.factor.shape[0]

    def dense(self) -> Tensor:
        """The flat k^2 x k^2 matrix scale * kron(A, A)."""
        return self.scale * torch.kron(self.factor, self.factor)

    def scaled(self, scale: float) -> "KroneckerCovariance":
        """The same structure multiplied by `scale`."""
        return KroneckerCovariance(self.factor, self.scale * check_sigma(scale, "scale"))

    def mean_variance(self) -> float:
        """Mean of the diagonal of the dense matrix: scale * mean(diag A)^2."""
        return self.scale * self.factor.diagonal().mean().item() ** 2

    def variances(self) -> Tensor:
        """Each pixel's variance, k x k: scale * A[i, i] A[j, j]."""
        return self.scale * torch.outer(self.factor.diagonal(), self.factor.diagonal())

    def eigenvalues(self) -> Tensor:
        """All k^2 eigenvalues, descending: products scale * a_p * a_q of the factor's eigenvalues."""
        a = torch.linalg.eigvalsh(self.factor).clamp_min(0)
        return (self.scale * torch.outer(a, a)).flatten().sort(descending=True).values


@dataclass(frozen=True)
class FactoredCovariance:
    """A dense covariance scale * S of a k x k filter kept with a square root R of S (R R^T = S), so
    drawing from it needs no factorization: f = sqrt(scale) R z."""

    matrix: Tensor
    root: Tensor
    scale: float = 1.0

    def __post_init__(self):
        kernel_size_of(self.matrix)
        if self.root.shape != self.matrix.shape:
            raise ValueError(f"the square root must be {tuple(self.matrix.shape)}, got {tuple(self.root.shape)}")
        check_sigma(self.scale, "scale")

    @property
    def kernel_size(self) -> int:
        return kernel_size_of(self.matrix)

    def dense(self) -> Tensor:
        """The flat k^2 x k^2 matrix scale * S."""
        return self.scale * self.matrix

    def scaled(self, scale: float) -> "FactoredCovariance":
        """The same matrix multiplied by `scale`."""
        return FactoredCovariance(self.matrix, self.root, self.scale * check_sigma(scale, "scale"))

    def mean_variance(self) -> float:
        """Mean of the diagonal of scale * S."""
        return self.scale * self.matrix.diagonal().mean().item()

    def variances(self) -> Tensor:
        """Each pixel's variance, k x k: scale * S[k*i+j, k*i+j]."""
        k = self.kernel_size
        return self.scale * self.matrix.diagonal().reshape(k, k)


def gaussian(kernel_size: int, sigma: float, *, structured: bool = False):
    """Closed-form covariance S[k*i+j, k*l+m] = exp(-((i-l)^2 + (j-m)^2) / (2 sigma^2)), unit diagonal.

    Returns the dense float64 k^2 x k^2 matrix, or a KroneckerCovariance when `structured` is True.
    """
    cov = KroneckerCovariance(gaussian_factor(kernel_size, sigma))
    return cov if structured else cov.dense()


# Stationary families in the Euclidean distance d between two pixels of the k x k grid, each 1 at d = 0
# (unit diagonal) and positive definite on any grid. Only the Gaussian factorizes (Kronecker).
FAMILIES: dict[str, str] = {
    "gaussian": "exp(-d^2 / (2 sigma^2))",
    "laplace": "exp(-d / sigma)",
    "matern32": "(1 + sqrt(3) d / sigma) exp(-sqrt(3) d / sigma)",
    "matern52": "(1 + sqrt(5) d / sigma + 5 d^2 / (3 sigma^2)) exp(-sqrt(5) d / sigma)",
    "rational-quadratic": "(1 + d^2 / (2 alpha sigma^2))^(-alpha), alpha = 1 by default",
}


def check_family(family: str) -> str:
    """`family` if it is in FAMILIES; ValueError listing them otherwise."""
    if family not in FAMILIES:
        raise ValueError(f"unknown covariance family {family!r}; choose one of: {', '.join(FAMILIES)}")
    return family


def squared_distances(kernel_size: int) -> Tensor:
    """D2[k*i+j, k*l+m] = (i - l)^2 + (j - m)^2, the squared pixel distances (float64, k^2 x k^2)."""
    k = check_kernel_size(kernel_size)
    idx = torch.arange(k, dtype=torch.float64)
    d2 = (idx[:, None] - idx[None, :]) ** 2
    return (d2[:, None, :, None] + d2[None, :, None, :]).reshape(k * k, k * k)


def family_kernel(family: str, d2: Tensor, sigma: float, *, alpha: float = 1.0) -> Tensor:
    """The family's correlation at squared distance d2 (any shape), formulas in FAMILIES."""
    check_family(family)
    s = check_sigma(sigma)
    if family == "gaussian":
        return torch.exp(-d2 / (2 * s * s))
    if family == "rational-quadratic":
        a = check_sigma(alpha, "alpha")
        return (1 + d2 / (2 * a * s * s)) ** (-a)
    d = d2.sqrt()
    if family == "laplace":
        return torch.exp(-d / s)
    if family == "matern32":
        r = math.sqrt(3) * d / s
        return (1 + r) * torch.exp(-r)
    r = math.sqrt(5) * d / s
    return (1 + r + r * r / 3) * torch.exp(-r)


def closed_form(family: str, kernel_size: int, sigma: float, *, alpha: float = 1.0,
                structured: bool = False):
    """The family's k^2 x k^2 covariance S[p, q] = kernel(|p - q|), unit diagonal (dense float64).

    `structured` asks for a KroneckerCovariance, which only the Gaussian has; the others stay dense.
    """
    if check_family(family) == "gaussian":
        return gaussian(kernel_size, sigma, structured=structured)
    return family_kernel(family, squared_distances(kernel_size), sigma, alpha=alpha)


def depth_schedule(sigma_first: float, sigma_last: float, depth: int) -> list[float]:
    """sigma_l = sigma_first + (sigma_last - sigma_first) * l / (L - 1) for l = 0..L-1."""
    a, b = check_sigma(sigma_first, "sigma_first"), check_sigma(sigma_last, "sigma_last")
    depth = whole_number(depth, "depth", 1)
    if depth == 1:
        return [a]
    return [a + (b - a) * l / (depth - 1) for l in range(depth)]


# ---------------------------------------------------------------------------------------------
# Views: flat <-> blocks <-> tiled
# ---------------------------------------------------------------------------------------------


def to_blocks(S: Tensor) -> Tensor:
    """Block form B[i, j, l, m] = S[k*i + j, k*l + m], shape (k, k, k, k)."""
    k = kernel_size_of(S)
    return S.reshape(k, k, k, k)


def from_blocks(B: Tensor) -> Tensor:
    """Inverse of `to_blocks`: the flat k^2 x k^2 matrix."""
    if B.dim() != 4 or len(set(B.shape)) != 1:
        raise ValueError(f"block form must have shape (k, k, k, k), got {tuple(B.shape)}")
    k = B.shape[0]
    return B.reshape(k * k, k * k)


def to_tiled(S: Tensor) -> Tensor:
    """Tiled display view T[i*k + l, j*k + m] = B[i, j, l, m]: a k x k grid of k x k tiles."""
    k = kernel_size_of(S)
    return to_blocks(S).permute(0, 2, 1, 3).reshape(k * k, k * k)


def from_tiled(T: Tensor) -> Tensor:
    """Inverse of `to_tiled`."""
    k = kernel_size_of(T)
    return from_blocks(T.reshape(k, k, k, k).permute(0, 2, 1, 3))


# ---------------------------------------------------------------------------------------------
# Empirical covariance, PSD projection, transfer, fit
# ---------------------------------------------------------------------------------------------


def flatten_filters(filters: Tensor) -> Tensor:
    """(N, k, k) or depthwise weight (C, 1, k, k) -> (N, k^2) float64 rows f[k*i + j] = F[i, j]."""
    W = torch.as_tensor(filters).detach()
    if W.dim() == 4:
        if W.shape[1] != 1:
            raise ValueError(
                f"expected a depthwise weight (C, 1, k, k), got shape {tuple(W.shape)}; "
                "regular convolutions have c_in > 1 input channels per filter"
            )
        W = W[:, 0]
    if W.dim() != 3:
        raise ValueError(f"filters must have shape (N, k, k) or (C, 1, k, k), got {tuple(W.shape)}")
    if W.shape[1] != W.shape[2]:
        raise ValueError(f"filters are {W.shape[1]} x {W.shape[2]}: {_NON_SQUARE}")
    return W.reshape(W.shape[0], -1).to(torch.float64)


def empirical(filters: Tensor, centered: bool = True) -> Tensor:
    """Covariance of filters. Centered: unbiased, (W - mean)^T (W - mean) / (N - 1). Uncentered: W^T W / N."""
    W = flatten_filters(filters)
    n = W.shape[0]
    if centered:
        if n < 2:
            raise ValueError("a centered covariance needs at least 2 filters")
        W = W - W.mean(dim=0, keepdim=True)
        return W.T @ W / (n - 1)
    if n < 1:
        raise ValueError("need at least one filter")
    return W.T @ W / n


def nearest_psd(S: Tensor, eps: float = 0.0) -> Tensor:
    """Nearest symmetric PSD matrix in Frobenius norm: V diag(max(w, eps)) V^T of sym(S) = V diag(w) V^T."""
    S = torch.as_tensor(S).to(torch.float64)
    kernel_size_of(S)
    if not torch.isfinite(S).all():
        raise ValueError("covariance contains NaN or infinite values")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    w, V = torch.linalg.eigh((S + S.T) / 2)
    P = (V * w.clamp_min(eps)) @ V.T
    return (P + P.T) / 2


def interpolation_matrix(size: int, new_size: int) -> Tensor:
    """P (new_size x size, float64): linear interpolation with aligned corners, x' = P x, the weights
    of F.interpolate(mode="linear", align_corners=True)."""
    if size == 1:
        return torch.ones(new_size, 1, dtype=torch.float64)
    eye = torch.eye(size, dtype=torch.float64)[:, None, :]
    return F.interpolate(eye, size=new_size, mode="linear", align_corners=True)[:, 0, :].T


def resize(S: Tensor, new_kernel_size: int) -> Tensor:
    """Transfer a covariance to another kernel size k'.

    Linear interpolation with aligned corners of the block tensor B (k, k, k, k) to (k', k', k', k')
    on all four axes, then the nearest PSD matrix. Interpolating every axis by P (k' x k) is the
    congruence S' = Q S Q^T with Q = P (x) P, which keeps a PSD matrix PSD: a PSD S is projected at
    its own size (an O(k^6) eigh, not O(k'^6)) and then interpolated; any other S after interpolation.
    """
    S = validate_covariance(S)
    k = kernel_size_of(S)
    k2 = check_kernel_size(new_kernel_size)
    if k2 == k:
        return nearest_psd(S)
    P = interpolation_matrix(k, k2)
    Q = torch.kron(P, P)  # row-major: the pixel (i, j) of a k' x k' filter is row k' i + j
    if is_psd(S):
        S2 = Q @ nearest_psd(S) @ Q.T
        return (S2 + S2.T) / 2
    return nearest_psd(Q @ S @ Q.T)


def normalize_trace(S: Tensor) -> Tensor:
    """S scaled so that the mean of its diagonal is 1."""
    d = S.diagonal().mean()
    if not d > 0:
        raise ValueError("covariance has a non-positive mean diagonal; cannot normalize it")
    return S / d


def pearson(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of the flattened entries of a and b."""
    x = a.flatten().to(torch.float64)
    y = b.flatten().to(torch.float64)
    x, y = x - x.mean(), y - y.mean()
    den = x.norm() * y.norm()
    return float((x @ y) / den) if den > 0 else float("nan")


def _distance_sums(S: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(d2, n, s): the distinct squared pixel distances d2 between the k^2 x k^2 entries of S, the number
    n of entries at each and their sum s. A stationary family is constant at each d2, so its squared
    error and Pearson r against S need only these: O(k^2) per sigma instead of O(k^4)."""
    D2 = squared_distances(kernel_size_of(S)).flatten().round().long()
    n = torch.bincount(D2)
    s = torch.bincount(D2, weights=S.flatten().to(torch.float64))
    at = n.nonzero().squeeze(1)
    return at.to(torch.float64), n[at].to(torch.float64), s[at]


def fit_family(S: Tensor, family: str = "gaussian", *, alpha: float = 1.0) -> tuple[float, float]:
    """Best sigma of a closed-form family for a covariance, and the fit's Pearson r.

    Both matrices are scaled to unit mean diagonal; sigma minimizes the squared error
    sum_pq (kernel(d_pq) - S_pq)^2 over a log grid (0.05..50), refined by golden-section search.
    Sums run over the distinct distances (_distance_sums). Returns (sigma, r).
    """
    return fit_families(S, (family,), alpha=alpha)[family]


def fit_families(S: Tensor, families=tuple(FAMILIES), *, alpha: float = 1.0) -> dict[str, tuple[float, float]]:
    """fit_family of each family -> (sigma, r), with S checked, scaled and summed by distance once."""
    for family in families:
        check_family(family)
    S = normalize_trace(validate_covariance(S)).to(torch.float64)
    d2, n, s = _distance_sums(S)
    mean_s = float(S.mean())
    spread = float(((S - mean_s) ** 2).sum())
    return {family: _fit_by_distance(family, d2, n, s, mean_s, spread, alpha) for family in families}


def _fit_by_distance(family: str, d2: Tensor, n: Tensor, s: Tensor, mean_s: float, spread: float,
                     alpha: float) -> tuple[float, float]:
    """fit_family's sigma and r from S's distance sums, its mean entry and sum_pq (S_pq - mean)^2."""

    def loss(log_s: float) -> float:  # the squared error less its constant sum_pq S_pq^2
        f = family_kernel(family, d2, math.exp(log_s), alpha=alpha)
        return float((n * f * f - 2 * f * s).sum())

    grid = torch.linspace(math.log(0.05), math.log(50), 121)
    losses = [loss(float(g)) for g in grid]
    best = min(range(len(losses)), key=losses.__getitem__)
    lo = float(grid[max(best - 1, 0)])
    hi = float(grid[min(best + 1, len(grid) - 1)])
    phi = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - phi * (hi - lo), lo + phi * (hi - lo)
        if loss(a) < loss(b):
            hi = b
        else:
            lo = a
    sigma = math.exp((lo + hi) / 2)
    f = family_kernel(family, d2, sigma, alpha=alpha)
    mean_f = float((n * f).sum() / n.sum())
    cross = float(((f - mean_f) * (s - n * mean_s)).sum())
    den = math.sqrt(float((n * (f - mean_f) ** 2).sum()) * spread)
    return sigma, cross / den if den > 0 else float("nan")


def fit_sigma(S: Tensor) -> tuple[float, float]:
    """Best Gaussian closed-form sigma for a covariance and its Pearson r (fit_family's Gaussian)."""
    return fit_family(S, "gaussian")


def effective_rank(S) -> float:
    """exp(entropy of the normalized eigenvalues) (Roy & Vetterli): 1 for rank one, k^2 for the identity."""
    if isinstance(S, KroneckerCovariance):
        w = S.eigenvalues()
    else:
        w = torch.linalg.eigvalsh(torch.as_tensor(S).to(torch.float64)).clamp_min(0)
    p = w / w.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def transfer(covariances: list[Tensor], kernel_size: int, depth: int) -> list[Tensor]:
    """Covariances learned at depth L transferred to `depth` layers of `kernel_size`.

    Each is resized to k' (see `resize`); layer l' takes the covariance at fractional index
    t = l' (L - 1) / (L' - 1), linearly interpolated between layers floor(t) and floor(t) + 1.
    Convex combinations of PSD matrices stay PSD.
    """
    if not covariances:
        raise ValueError("no learned covariances given: pass one k^2 x k^2 matrix per layer")
    depth = whole_number(depth, "depth", 1)
    sized = [resize(S, kernel_size) for S in covariances]
    L = len(sized)
    out = []
    for layer in range(depth):
        t = layer * (L - 1) / (depth - 1) if depth > 1 else 0.0
        lo = min(int(math.floor(t)), L - 1)
        hi = min(lo + 1, L - 1)
        w = t - lo
        out.append((1 - w) * sized[lo] + w * sized[hi])
    return out
