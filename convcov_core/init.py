"""Initialization schemes for depthwise convolutional filters, applied in place like torch.nn.init.

Every scheme draws zero-mean filters with a requested mean per-weight variance v. By default v is the
variance of PyTorch's own init for a depthwise conv, kaiming_uniform(a=sqrt(5)):
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = k^2 (kh kw for a kh x kw kernel), so v = 1/(3 k^2).
Bringing every scheme to the same v makes comparisons isolate the *structure* of the filters rather
than their scale.

Default Gaussian schedule: sigma grows linearly over depth from sigma_first = 1 to
sigma_last = max(1, k / 3). At k = 9 this is the 1 -> 3 schedule measured while planning (frozen-filter
ConvMixers on digits train far better than with the default init); scaling sigma_last with k keeps the
last layer's Gaussian bump covering the same share of a larger filter (1 -> 5 at k = 15).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .covariance import (
    KroneckerCovariance,
    check_kernel_size,
    check_sigma,
    depth_schedule,
    gaussian,
    kernel_size_of,
    normalize_trace,
    transfer,
)
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


@dataclass(frozen=True)
class Scheme:
    """A named way to draw depthwise filters; `covariance` tells which per-layer covariance it needs."""

    name: str
    description: str
    draw: Callable[..., Tensor]
    covariance: str = ""  # "" (none), "gaussian" (closed form, depth schedule) or "learned"


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("default", "PyTorch default: i.i.d. uniform U(-b, b)", _draw_uniform),
        Scheme("kaiming_normal", "i.i.d. normal (Kaiming normal shape)", _draw_normal),
        Scheme("orthogonal", "orthogonal rows of the C x k^2 filter matrix", _draw_orthogonal),
        Scheme("gaussian", "closed-form Gaussian covariance, sigma grows with depth",
               _draw_covariance, "gaussian"),
        Scheme("learned", "covariances learned by a trained network, transferred",
               _draw_covariance, "learned"),
    )
}


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


def sample_scheme(scheme: str, kernel_size: int, n: int, *, sigma: float | None = None,
                  covariance: Tensor | None = None, variance="default",
                  generator: torch.Generator | None = None) -> Tensor:
    """n filters (n, k, k) as `scheme` draws them for one depthwise layer (e.g. for a gallery).

    gaussian uses `sigma` (default: the first layer's); learned uses `covariance` resized to k.
    """
    s = get_scheme(scheme)
    k = check_kernel_size(kernel_size)
    cov = None
    if s.covariance == "gaussian":
        cov = gaussian(k, sigma if sigma is not None else default_sigmas(k)[0], structured=True)
    elif s.covariance == "learned":
        if covariance is None:
            raise ValueError("the 'learned' scheme needs a covariance (k^2 x k^2 matrix)")
        cov = transfer([covariance], k, 1)[0]
    n = whole_number(n, "number of filters", 1)
    return s.draw((k, k), n, _target_variance(variance, (k, k)), cov, generator)


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
