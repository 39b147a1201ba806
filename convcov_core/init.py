"""Initialization schemes for depthwise convolutional filters, applied in place like torch.nn.init.

Every scheme draws filters with a requested mean per-weight second moment v = mean_p E[w_p^2] (a
filter's expected energy E||w||^2 is k^2 v); for the zero-mean schemes (default, kaiming_normal,
orthogonal, gaussian, learned, delta-orthogonal) v is the mean per-weight variance. By default v is the
variance of PyTorch's own init for a depthwise conv, kaiming_uniform(a=sqrt(5)):
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = k^2 (kh kw for a kh x kw kernel), so v = 1/(3 k^2).
Bringing every scheme to the same v makes comparisons isolate the *structure* of the filters rather
than their scale. The schemes from peers and the seed papers (impulse, box-3, gaussian-bump,
delta-orthogonal, all-pass) have their own natural scales; they are brought to v too, so a
delta-orthogonal or all-pass conv is orthogonal times sqrt(k^2 v) (an isometry at v = 1 / k^2).

Default Gaussian schedule: sigma grows linearly over depth from sigma_first = 1 to
sigma_last = max(1, k / 3). At k = 9 this is the 1 -> 3 schedule measured while planning (frozen-filter
ConvMixers on digits train far better than with the default init); scaling sigma_last with k keeps the
last layer's Gaussian bump covering the same share of a larger filter (1 -> 5 at k = 15).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import nn

from . import allpass
from .covariance import (
    KroneckerCovariance,
    check_kernel_size,
    check_sigma,
    depth_schedule,
    empirical,
    gaussian,
    kernel_size_of,
    normalize_trace,
    transfer,
)
from .mimetic import mimetic_ as mimetic_  # re-exported: init.mimetic_, in place like init_depthwise_
from .sampling import sample_filters
from .validation import whole_number

Tensor = torch.Tensor


def default_variance(kernel_size: int) -> float:
    """Per-weight variance of PyTorch's default depthwise init: 1 / (3 k^2)."""
    return 1.0 / (3 * kernel_size * kernel_size)


def default_sigmas(kernel_size: int) -> tuple[float, float]:
    """The default (sigma_first, sigma_last) = (1, max(1, k / 3)) of the Gaussian scheme."""
    return 1.0, max(1.0, kernel_size / 3)


def depthwise_convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every depthwise Conv2d (groups == in_channels > 1, out_channels a multiple, kernel > 1), in order."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
        and m.groups > 1
        and m.groups == m.in_channels
        and m.out_channels % m.in_channels == 0
        and max(m.kernel_size) > 1
    ]


# ---------------------------------------------------------------------------------------------
# Schemes: each draws n zero-mean kh x kw float32 filters with mean per-weight variance v
# ---------------------------------------------------------------------------------------------


def _draw_uniform(shape, n, v, cov, generator):
    bound = math.sqrt(3 * v)  # Var U(-b, b) = b^2 / 3
    return (torch.rand(n, *shape, generator=generator) * 2 - 1) * bound


def _draw_normal(shape, n, v, cov, generator):
    return torch.randn(n, *shape, generator=generator) * math.sqrt(v)


def _draw_orthogonal(shape, n, v, cov, generator):
    """Rows (n <= d) or columns (n > d) of the n x d filter matrix orthonormal (d = kh kw), then
    scaled to v."""
    d = shape[0] * shape[1]
    a = torch.randn(max(n, d), min(n, d), dtype=torch.float64, generator=generator)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))  # Haar-uniform, as torch.nn.init.orthogonal_
    w = q.T if n < d else q
    mean_square = min(n, d) / (n * d)
    return (w.reshape(n, *shape) * math.sqrt(v / mean_square)).float()


def _centre(k: int, side: int) -> slice:
    """The central `side` of k pixels."""
    start = (k - side) // 2
    return slice(start, start + side)


def _draw_covariance(shape, n, v, cov, generator):
    """N(0, v S / mean(diag S)) for the layer's k x k covariance S. A kh x kw layer (k = max(kh, kw))
    gets the central kh x kw window of such draws, with v raised so the window's mean per-weight
    variance is v: a window of a Gaussian vector is Gaussian with the matching sub-matrix of S."""
    if isinstance(cov, KroneckerCovariance):
        k, variances = cov.kernel_size, torch.outer(cov.factor.diagonal(), cov.factor.diagonal())
    else:
        k = kernel_size_of(cov)
        variances = cov.diagonal().reshape(k, k)
    rows, cols = _centre(k, shape[0]), _centre(k, shape[1])
    v = v / (variances[rows, cols].mean() / variances.mean()).item()  # 1 for a square layer
    if isinstance(cov, KroneckerCovariance):
        draws = sample_filters(cov.scaled(v / cov.mean_variance()), n, generator=generator)
    else:
        draws = sample_filters(v * normalize_trace(cov), n, generator=generator)
    return draws[:, rows, cols]


# ---------------------------------------------------------------------------------------------
# Schemes from peers and the seed papers (see each draw's docstring for formula and source)
# ---------------------------------------------------------------------------------------------


def _draw_box(shape, n, v, cov, generator, *, pixels: int):
    """Box-n of Zheng, Li & Lucey, "Convolutional Initialization for Data-Efficient Vision
    Transformers" (arXiv 2401.12511; `box{n}` in their code): `pixels` distinct pixels of each
    kh x kw filter, chosen uniformly, set to c = sqrt(kh kw v / pixels), the rest 0, so
    E||w||^2 = kh kw v as in their code (sqrt(1 / (3 n)) at the default v). Not zero-mean:
    E[w] = c pixels / (kh kw). impulse is box-1, each filter a single c at a random position."""
    size = shape[0] * shape[1]
    if pixels > size:
        raise ValueError(f"box-{pixels} needs at least {pixels} pixels per filter; a {shape[0]} x {shape[1]} "
                         f"kernel has {size}")
    chosen = torch.rand(n, size, generator=generator).argsort(dim=1)[:, :pixels]
    filters = torch.zeros(n, size).scatter_(1, chosen, math.sqrt(size * v / pixels))
    return filters.reshape(n, *shape)


def _bumps(shape, v, cov) -> Tensor:
    """Every filter gaussian-bump can draw, one per centre c of the kh x kw window, (kh kw, kh, kw):
    column c of the closed-form covariance, S[:, c] = exp(-|p - c|^2 / (2 sigma^2)), cropped to the
    window, times one constant a that makes the mean per-weight second moment v."""
    S = cov.dense() if isinstance(cov, KroneckerCovariance) else cov
    k = kernel_size_of(S)
    rows, cols = _centre(k, shape[0]), _centre(k, shape[1])
    bumps = S.reshape(k, k, k, k)[rows, cols][..., rows, cols].reshape(-1, *shape)  # S symmetric
    return bumps * math.sqrt(v / bumps.pow(2).mean().item())


def _draw_gaussian_bump(shape, n, v, cov, generator):
    """Gaussian bumps of Zheng, Li & Lucey (arXiv 2401.12511; `gau` in their code): each filter is
    w(p) = a exp(-|p - c|^2 / (2 sigma^2)) at a uniformly random pixel c, a deterministic bump with
    one global scale a (E w^2 = v on average over the centres), sigma from the gaussian scheme's
    schedule. Not a sample from a covariance: these filters are the *columns* of the closed-form
    covariance S, where the gaussian scheme draws N(0, S); their second-moment matrix is
    a^2 S^2 / k^2, smoother than S itself."""
    bumps = _bumps(shape, v, cov)
    return bumps[torch.randint(len(bumps), (n,), generator=generator)].float()


def _draw_delta_orthogonal(shape, n, v, cov, generator):
    """Delta-orthogonal of Xiao et al., "Dynamical Isometry and a Mean Field Theory of CNNs" (ICML
    2018, Algorithm 2): zero except the centre tap, which holds an orthogonal matrix. For a depthwise
    conv that matrix is diagonal, so orthogonal means a sign: w = +-sqrt(kh kw v) e_centre, sign
    uniform (zero mean). The conv is the identity times +-sqrt(kh kw v), an isometry at v = 1/(kh kw)."""
    filters = torch.zeros(n, *shape)
    signs = torch.randint(0, 2, (n,), generator=generator) * 2.0 - 1.0
    filters[:, shape[0] // 2, shape[1] // 2] = signs * math.sqrt(shape[0] * shape[1] * v)
    return filters


_ALLPASS_CHUNK_PIXELS = 2**22  # map pixels per FFT batch (32 MB of float64), to bound memory at large n


def allpass_filters(shape: tuple[int, int], n: int, generator: torch.Generator | None = None) -> Tensor:
    """n untruncated all-pass filters for a kh x kw kernel, (n, 2 kh, 2 kw) float64, origin at [0, 0]:
    allpass.cayley of filters V from PyTorch's default init, Q(f) = (1 - 2i Im V(f)) / (1 + 2i Im V(f)),
    |Q(f)| = 1, so the circular conv by Q on a 2 kh x 2 kw map is orthogonal."""
    return allpass.cayley(_draw_uniform(shape, n, 1.0 / (3 * shape[0] * shape[1]), None, generator))


def allpass_truncation_error(kernel_size: int, n: int = 4096, generator: torch.Generator | None = None) -> float:
    """Mean share of an all-pass filter's energy that lies outside its k x k window, 1 - ||Q_kxk||^2
    (||Q||^2 = 1): 0.174 at k = 3, 9, 15 and 31 (from 100,000 filters; 40,000 at k = 31), so the
    truncated filters the all-pass scheme keeps are only near-orthogonal."""
    k = check_kernel_size(kernel_size)
    full = allpass_filters((k, k), whole_number(n, "number of filters", 1), generator)
    return 1.0 - allpass.kernel_window(full, (k, k)).pow(2).sum(dim=(1, 2)).mean().item()


def _draw_allpass(shape, n, v, cov, generator):
    """All-pass: allpass_filters truncated to their kh x kw window and each rescaled to ||w||^2 =
    kh kw v (the truncation removes 17.4 % of the energy, allpass_truncation_error). Not zero-mean:
    the centre tap averages 0.48 of the filter's norm (k = 9)."""
    per_chunk = max(1, _ALLPASS_CHUNK_PIXELS // (allpass.GRID**2 * shape[0] * shape[1]))
    window = torch.cat([allpass.kernel_window(allpass_filters(shape, len(part), generator), shape)
                        for part in torch.arange(n).split(per_chunk)])
    norms = window.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
    return (window * math.sqrt(shape[0] * shape[1] * v) / norms).float()


# ---------------------------------------------------------------------------------------------
# The exact covariance of each scheme's k x k filters, E[w w^T] - E[w] E[w]^T (k^2 x k^2, float64)
# ---------------------------------------------------------------------------------------------


def _white_covariance(k, v, cov):
    return v * torch.eye(k * k, dtype=torch.float64)


def _scaled_covariance(k, v, cov):
    """v S / mean(diag S), what _draw_covariance samples."""
    return v * normalize_trace(cov.dense() if isinstance(cov, KroneckerCovariance) else cov)


def _box_covariance(k, v, cov, *, pixels: int):
    """Box-n on d = k^2 pixels: E[w_p w_q] = v (p = q), v (n - 1) / (d - 1) (p != q); E[w] = c n / d."""
    d = k * k
    off_diagonal = v * (pixels - 1) / (d - 1)
    ones = torch.ones(d, d, dtype=torch.float64)
    second_moment = (v - off_diagonal) * torch.eye(d, dtype=torch.float64) + off_diagonal * ones
    return second_moment - v * pixels / d * ones  # E[w_p] E[w_q] = c^2 n^2 / d^2 = v n / d


def _bump_covariance(k, v, cov):
    """Covariance of one bump chosen uniformly among the k^2 of _bumps."""
    bumps = _bumps((k, k), v, cov).reshape(k * k, -1)
    return torch.cov(bumps.T, correction=0)


def _delta_covariance(k, v, cov):
    centre = torch.zeros(k * k, dtype=torch.float64)
    centre[(k * k) // 2] = 1.0
    return k * k * v * torch.outer(centre, centre)


REFERENCE_FILTERS = 20_000


def _estimated_covariance(k, v, cov, *, draw):
    """No closed form: the covariance of REFERENCE_FILTERS filters from a fixed seed (2^31 - 1)."""
    generator = torch.Generator().manual_seed(2**31 - 1)
    return empirical(draw((k, k), REFERENCE_FILTERS, v, cov, generator).double())


@dataclass(frozen=True)
class Scheme:
    """A named way to draw depthwise filters; `covariance` tells which per-layer covariance it needs."""

    name: str
    description: str
    draw: Callable[..., Tensor]
    covariance: str = ""  # "" (none), "gaussian" (closed form, depth schedule) or "learned"
    target: Callable[..., Tensor] = _white_covariance  # (k, v, covariance) -> the filters' covariance


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("default", "PyTorch default: i.i.d. uniform U(-b, b)", _draw_uniform),
        Scheme("kaiming_normal", "i.i.d. normal (Kaiming normal shape)", _draw_normal),
        Scheme("orthogonal", "orthogonal rows of the C x k^2 filter matrix", _draw_orthogonal),
        Scheme("gaussian", "closed-form Gaussian covariance, sigma grows with depth",
               _draw_covariance, "gaussian", _scaled_covariance),
        Scheme("learned", "covariances learned by a trained network, transferred",
               _draw_covariance, "learned", _scaled_covariance),
        Scheme("impulse", "a single one at a random position (Zheng et al. 2024)",
               partial(_draw_box, pixels=1), target=partial(_box_covariance, pixels=1)),
        Scheme("box-3", "three random pixels at one constant value (Zheng et al. 2024)",
               partial(_draw_box, pixels=3), target=partial(_box_covariance, pixels=3)),
        Scheme("gaussian-bump", "a Gaussian bump at a random centre (Zheng et al. 2024)",
               _draw_gaussian_bump, "gaussian", _bump_covariance),
        Scheme("delta-orthogonal", "the centre impulse with a random sign (Xiao et al. 2018)",
               _draw_delta_orthogonal, target=_delta_covariance),
        Scheme("all-pass", "Cayley transform of a random skew filter, truncated (Trockman & Kolter 2021)",
               _draw_allpass, target=partial(_estimated_covariance, draw=_draw_allpass)),
    )
}


#: Schemes that initialize a model's attention rather than its depthwise filters (mimetic.py).
MODEL_SCHEMES: dict[str, str] = {
    "mimetic": "self-attention W_q W_k^T ~ I per head, W_v W_proj ~ -I per layer (Trockman & Kolter 2023)",
}


def init_names() -> list[str]:
    """Every init a training config may name: the depthwise SCHEMES, then the MODEL_SCHEMES."""
    return [*SCHEMES, *MODEL_SCHEMES]


def check_init(name: str) -> str:
    """`name` if it is in init_names(); ValueError listing them otherwise."""
    if name not in init_names():
        raise ValueError(f"unknown init scheme {name!r}; choose one of: {', '.join(init_names())}")
    return name


def get_scheme(name: str) -> Scheme:
    """The registered scheme called `name`; ValueError listing the valid names otherwise."""
    if name not in SCHEMES:
        raise ValueError(f"unknown init scheme {name!r}; choose one of: {', '.join(SCHEMES)}")
    return SCHEMES[name]


def _target_variance(variance, shape: tuple[int, int]) -> float:
    """The number asked for, or "default": PyTorch's 1 / (3 fan_in), fan_in = kh kw."""
    if isinstance(variance, str):
        if variance != "default":
            raise ValueError(f"variance must be 'default' or a number > 0, got {variance!r}")
        return 1.0 / (3 * shape[0] * shape[1])
    return check_sigma(variance, "variance")


def _one_layer_covariance(scheme: Scheme, k: int, sigma, covariance):
    """The covariance one k x k layer of `scheme` needs: the Gaussian closed form at `sigma` (default:
    the first layer's), the learned `covariance` resized to k, or None."""
    if scheme.covariance == "gaussian":
        return gaussian(k, sigma if sigma is not None else default_sigmas(k)[0], structured=True)
    if scheme.covariance == "learned":
        if covariance is None:
            raise ValueError("the 'learned' scheme needs a covariance (k^2 x k^2 matrix)")
        return transfer([covariance], k, 1)[0]
    return None


def sample_scheme(scheme: str, kernel_size: int, n: int, *, sigma: float | None = None,
                  covariance: Tensor | None = None, variance="default",
                  generator: torch.Generator | None = None) -> Tensor:
    """n filters (n, k, k) as `scheme` draws them for one depthwise layer (e.g. for a gallery).

    gaussian and gaussian-bump use `sigma` (default: the first layer's); learned uses `covariance`
    resized to k.
    """
    s = get_scheme(scheme)
    k = check_kernel_size(kernel_size)
    cov = _one_layer_covariance(s, k, sigma, covariance)
    n = whole_number(n, "number of filters", 1)
    return s.draw((k, k), n, _target_variance(variance, (k, k)), cov, generator)


def scheme_covariance(scheme: str, kernel_size: int, *, sigma: float | None = None,
                      covariance: Tensor | None = None, variance="default") -> Tensor:
    """The k^2 x k^2 covariance E[w w^T] - E[w] E[w]^T of the filters sample_scheme draws with the
    same arguments (float64): exact for every scheme but all-pass, whose has no closed form and is
    estimated from REFERENCE_FILTERS filters."""
    s = get_scheme(scheme)
    k = check_kernel_size(kernel_size)
    return s.target(k, _target_variance(variance, (k, k)), _one_layer_covariance(s, k, sigma, covariance))


def _layer_covariances(scheme: Scheme, kernel_sizes: list[int], sigma_first, sigma_last, covariances):
    """Per-layer covariances for the covariance schemes, None per layer for the i.i.d. ones."""
    depth = len(kernel_sizes)
    if scheme.covariance == "gaussian":
        first, last = default_sigmas(max(kernel_sizes))
        first = first if sigma_first is None else sigma_first
        last = last if sigma_last is None else sigma_last
        sigmas = depth_schedule(first, last, depth)
        return [gaussian(k, s, structured=True) for k, s in zip(kernel_sizes, sigmas)]
    if scheme.covariance == "learned":
        if not covariances:
            raise ValueError("the 'learned' scheme needs covariances=[one k^2 x k^2 matrix per layer]")
        by_size = {k: transfer(list(covariances), k, depth) for k in set(kernel_sizes)}
        return [by_size[k][layer] for layer, k in enumerate(kernel_sizes)]
    return [None] * depth


@torch.no_grad()
def init_depthwise_(model: nn.Module, scheme: str = "gaussian", *, sigma_first: float | None = None,
                    sigma_last: float | None = None, covariances: list[Tensor] | None = None,
                    variance="default", generator: torch.Generator | None = None) -> list[str]:
    """Initialize every depthwise conv's filters in place; return the names of the layers touched.

    Layer l of L gets filters drawn by `scheme` with mean per-weight variance `variance`
    ("default" = 1/(3 kh kw), PyTorch's own; or a number). A non-square kh x kw layer (band filters
    such as InceptionNeXt's 1 x 9) gets the central kh x kw window of the scheme's k x k filters,
    k = max(kh, kw). Biases and all other parameters are untouched.
    """
    s = get_scheme(scheme)
    layers = depthwise_convs(model)
    if not layers:
        raise ValueError(
            "model has no depthwise convolutions (Conv2d with groups == in_channels > 1 and a kernel "
            "larger than 1 x 1); nothing to initialize"
        )
    kernel_sizes = [max(conv.kernel_size) for _, conv in layers]
    covs = _layer_covariances(s, kernel_sizes, sigma_first, sigma_last, covariances)
    for (_, conv), cov in zip(layers, covs):
        shape = tuple(conv.kernel_size)
        filters = s.draw(shape, conv.out_channels, _target_variance(variance, shape), cov, generator)
        conv.weight.copy_(filters.reshape(conv.weight.shape).to(conv.weight))
    return [name for name, _ in layers]
