"""Initialization schemes, applied in place like torch.nn.init, and their registry.

SCHEMES holds one Scheme per init: the one description of it (its level, parameters, layer covariance,
how it draws or applies, the covariance of what it draws); every front end asks the Scheme rather
than its name. Depthwise schemes draw each depthwise layer's filters; a model-level scheme (mimetic)
sets a whole model's weights.

Every depthwise scheme draws filters with a requested mean per-weight second moment v = mean_p E[w_p^2]
(a filter's expected energy E||w||^2 is k^2 v); for the zero-mean schemes (default, kaiming_normal,
orthogonal, the closed forms, learned, delta-orthogonal) v is the mean per-weight variance. By default
v is the variance of PyTorch's own init for a depthwise conv, kaiming_uniform(a=sqrt(5)):
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = k^2 (kh kw for a kh x kw kernel), so v = 1/(3 k^2).
Bringing every scheme to the same v makes comparisons isolate the *structure* of the filters rather
than their scale. The schemes from peers and the seed papers (impulse, box-3, gaussian-bump,
delta-orthogonal, all-pass) have their own natural scales; they are brought to v too, so a
delta-orthogonal or all-pass conv is orthogonal times sqrt(k^2 v) (an isometry at v = 1 / k^2).

Default sigma schedule (every closed form, and gaussian-bump): sigma grows linearly over depth from
sigma_first = 1 to sigma_last = max(1, k / 3). At k = 9 this is the 1 -> 3 schedule measured while
planning (frozen-filter ConvMixers on digits train far better than with the default init); scaling
sigma_last with k keeps the last layer's Gaussian bump covering the same share of a larger filter
(1 -> 5 at k = 15).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Callable

import torch
from torch import nn

from . import allpass
from .covariance import (
    check_family,
    check_kernel_size,
    check_sigma,
    closed_form,
    depth_schedule,
    empirical,
    kernel_size_of,
    normalize_trace,
    transfer,
)
from .mimetic import DEFAULTS as MIMETIC_DEFAULTS
from .mimetic import mimetic_ as mimetic_  # re-exported: init.mimetic_, in place like init_depthwise_
from .sampling import factored, sample_filters
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


def _draw_uniform(shape, n, v, generator):
    bound = math.sqrt(3 * v)  # Var U(-b, b) = b^2 / 3
    return (torch.rand(n, *shape, generator=generator) * 2 - 1) * bound


def _draw_normal(shape, n, v, generator):
    return torch.randn(n, *shape, generator=generator) * math.sqrt(v)


def _draw_orthogonal(shape, n, v, generator):
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


def _dense(cov) -> Tensor:
    """A layer covariance (a matrix, a KroneckerCovariance or a FactoredCovariance) as a matrix."""
    return cov if isinstance(cov, Tensor) else cov.dense()


def _pixel_variances(cov) -> Tensor:
    """Each pixel's variance under a layer covariance, k x k."""
    if isinstance(cov, Tensor):
        k = kernel_size_of(cov)
        return cov.diagonal().reshape(k, k)
    return cov.variances()


def _draw_covariance(shape, n, v, generator, *, cov):
    """N(0, v S / mean(diag S)) for the layer's k x k covariance S. A kh x kw layer (k = max(kh, kw))
    gets the central kh x kw window of such draws, with v raised so the window's mean per-weight
    variance is v: a window of a Gaussian vector is Gaussian with the matching sub-matrix of S."""
    variances = _pixel_variances(cov)
    k = variances.shape[0]
    rows, cols = _centre(k, shape[0]), _centre(k, shape[1])
    v = v / (variances[rows, cols].mean() / variances.mean()).item()  # 1 for a square layer
    scaled = v * normalize_trace(cov) if isinstance(cov, Tensor) else cov.scaled(v / cov.mean_variance())
    return sample_filters(scaled, n, generator=generator)[:, rows, cols]


# ---------------------------------------------------------------------------------------------
# Schemes from peers and the seed papers (see each draw's docstring for formula and source)
# ---------------------------------------------------------------------------------------------


def _draw_box(shape, n, v, generator, *, pixels: int):
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
    S = _dense(cov)
    k = kernel_size_of(S)
    rows, cols = _centre(k, shape[0]), _centre(k, shape[1])
    bumps = S.reshape(k, k, k, k)[rows, cols][..., rows, cols].reshape(-1, *shape)  # S symmetric
    return bumps * math.sqrt(v / bumps.pow(2).mean().item())


def _draw_gaussian_bump(shape, n, v, generator, *, cov):
    """Gaussian bumps of Zheng, Li & Lucey (arXiv 2401.12511; `gau` in their code): each filter is
    w(p) = a exp(-|p - c|^2 / (2 sigma^2)) at a uniformly random pixel c, a deterministic bump with
    one global scale a (E w^2 = v on average over the centres), sigma from the gaussian scheme's
    schedule. Not a sample from a covariance: these filters are the *columns* of the closed-form
    covariance S, where the gaussian scheme draws N(0, S); their second-moment matrix is
    a^2 S^2 / k^2, smoother than S itself."""
    bumps = _bumps(shape, v, cov)
    return bumps[torch.randint(len(bumps), (n,), generator=generator)].float()


def _draw_delta_orthogonal(shape, n, v, generator):
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
    return allpass.cayley(_draw_uniform(shape, n, 1.0 / (3 * shape[0] * shape[1]), generator))


def allpass_truncation_error(kernel_size: int, n: int = 4096, generator: torch.Generator | None = None) -> float:
    """Mean share of an all-pass filter's energy that lies outside its k x k window, 1 - ||Q_kxk||^2
    (||Q||^2 = 1): 0.174 at k = 3, 9, 15 and 31 (from 100,000 filters; 40,000 at k = 31), so the
    truncated filters the all-pass scheme keeps are only near-orthogonal."""
    k = check_kernel_size(kernel_size)
    full = allpass_filters((k, k), whole_number(n, "number of filters", 1), generator)
    return 1.0 - allpass.kernel_window(full, (k, k)).pow(2).sum(dim=(1, 2)).mean().item()


def _draw_allpass(shape, n, v, generator):
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


def _white_covariance(k, v):
    return v * torch.eye(k * k, dtype=torch.float64)


def _scaled_covariance(k, v, *, cov):
    """v S / mean(diag S), what _draw_covariance samples."""
    return v * normalize_trace(_dense(cov))


def _box_covariance(k, v, *, pixels: int):
    """Box-n on d = k^2 pixels: E[w_p w_q] = v (p = q), v (n - 1) / (d - 1) (p != q); E[w] = c n / d."""
    d = k * k
    off_diagonal = v * (pixels - 1) / (d - 1)
    ones = torch.ones(d, d, dtype=torch.float64)
    second_moment = (v - off_diagonal) * torch.eye(d, dtype=torch.float64) + off_diagonal * ones
    return second_moment - v * pixels / d * ones  # E[w_p] E[w_q] = c^2 n^2 / d^2 = v n / d


def _bump_covariance(k, v, *, cov):
    """Covariance of one bump chosen uniformly among the k^2 of _bumps."""
    bumps = _bumps((k, k), v, cov).reshape(k * k, -1)
    return torch.cov(bumps.T, correction=0)


def _delta_covariance(k, v):
    centre = torch.zeros(k * k, dtype=torch.float64)
    centre[(k * k) // 2] = 1.0
    return k * k * v * torch.outer(centre, centre)


REFERENCE_FILTERS = 20_000


def _estimated_covariance(k, v, *, draw):
    """No closed form: the covariance of REFERENCE_FILTERS filters from a fixed seed (2^31 - 1)."""
    generator = torch.Generator().manual_seed(2**31 - 1)
    return empirical(draw((k, k), REFERENCE_FILTERS, v, generator).double())


# ---------------------------------------------------------------------------------------------
# The registry: one Scheme per init, the only description of it
# ---------------------------------------------------------------------------------------------

LEVELS = ("depthwise", "model")
CLOSED_FORMS_KEPT = 16  # factored closed forms kept for later draws (15 MB each at k = 31)


@lru_cache(maxsize=CLOSED_FORMS_KEPT)
def _closed_form_layer(family: str, kernel_size: int, sigma: float, alpha: float):
    """The layer covariance a closed-form scheme draws from: the Gaussian's KroneckerCovariance, any
    other family's dense S with its symmetric square root (sampling.factored), factored once per
    (family, k, sigma, alpha)."""
    S = closed_form(family, kernel_size, sigma, alpha=alpha, structured=True)
    return factored(S) if isinstance(S, Tensor) else S


@dataclass(frozen=True)
class ClosedForm:
    """A closed-form layer covariance: the family's S (covariance.FAMILIES, unit diagonal) at the
    layer's sigma of the depth schedule; alpha is the rational quadratic's."""

    family: str
    alpha: float = 1.0

    def __post_init__(self):
        check_family(self.family)
        object.__setattr__(self, "alpha", check_sigma(self.alpha, "alpha"))

    def at(self, kernel_size: int, sigma: float):
        """S at this k and sigma, a KroneckerCovariance (Gaussian) or a FactoredCovariance."""
        return _closed_form_layer(self.family, check_kernel_size(kernel_size), check_sigma(sigma), self.alpha)


@dataclass(frozen=True)
class Scheme:
    """One init scheme: its level, its parameters, where its layer covariance comes from, how it draws
    or applies, and the covariance of what it draws.

    Level "depthwise": draw(shape, n, v, generator, **params) gives n kh x kw filters of mean per-weight
    second moment v, target(k, v, **params) the exact covariance of k x k ones; a scheme with a layer
    covariance gets it as the keyword `cov` of both. That covariance is a closed form whose sigma
    follows the depth schedule (closed_form), or learned covariances the caller gives (needs_source).
    Level "model": apply(model, generator=..., **params) sets a whole model's weights. native: PyTorch's
    own init, so a model without depthwise filters keeps the weights it was built with.
    """

    name: str
    description: str
    draw: Callable[..., Tensor] | None = None
    target: Callable[..., Tensor] = _white_covariance
    params: Mapping = field(default_factory=dict)
    closed_form: ClosedForm | None = None
    needs_source: bool = False
    apply: Callable[..., list[str]] | None = None
    native: bool = False

    def __post_init__(self):
        if (self.draw is None) == (self.apply is None):
            raise ValueError(f"scheme {self.name!r}: give a draw (depthwise filters) or an apply (a whole model)")
        if self.closed_form is not None and self.needs_source:
            raise ValueError(f"scheme {self.name!r}: a closed-form covariance needs no source")

    @property
    def level(self) -> str:
        """"depthwise" (draws each depthwise layer's filters) or "model" (applies to a whole model)."""
        return "model" if self.apply is not None else "depthwise"

    @property
    def uses_sigma(self) -> bool:
        """Whether its filters follow the sigma schedule (sigma_first -> sigma_last over the depth)."""
        return self.closed_form is not None

    @property
    def reads(self) -> tuple[str, ...]:
        """The TrainConfig fields it reads: the sigma schedule, the learned covariances, or none."""
        return ("sigma_first", "sigma_last") if self.uses_sigma else ("covariances",) if self.needs_source else ()

    def applies_to(self, depthwise: bool) -> bool:
        """Whether it can start a model with depthwise filters (depthwise True) or one without."""
        return self.level == "depthwise" if depthwise else self.level == "model" or self.native

    def layer_covariances(self, kernel_sizes: list[int], sigma_first: float | None = None,
                          sigma_last: float | None = None, covariances: list[Tensor] | None = None) -> list:
        """Each depthwise layer's covariance: the closed form at sigma_l of the depth schedule (ends not
        given: default_sigmas of the largest k), the learned `covariances` transferred to each k and to
        the depth, or None per layer."""
        depth = len(kernel_sizes)
        if self.closed_form is not None:
            first, last = default_sigmas(max(kernel_sizes))
            sigmas = depth_schedule(first if sigma_first is None else sigma_first,
                                    last if sigma_last is None else sigma_last, depth)
            return [self.closed_form.at(k, sigma) for k, sigma in zip(kernel_sizes, sigmas)]
        if self.needs_source:
            if not covariances:
                raise ValueError(f"the {self.name!r} scheme needs covariances: one k^2 x k^2 matrix per layer")
            by_size = {k: transfer(list(covariances), k, depth) for k in set(kernel_sizes)}
            return [by_size[k][layer] for layer, k in enumerate(kernel_sizes)]
        return [None] * depth

    def _keywords(self, cov) -> dict:
        return {**self.params, "cov": cov} if self.uses_sigma or self.needs_source else dict(self.params)

    def filters(self, shape: tuple[int, int], n: int, v: float, cov=None,
                generator: torch.Generator | None = None) -> Tensor:
        """n kh x kw filters with mean per-weight second moment v, from the layer covariance `cov`."""
        return self.draw(shape, n, v, generator, **self._keywords(cov))

    def covariance_of(self, k: int, v: float, cov=None) -> Tensor:
        """The exact k^2 x k^2 covariance of its k x k filters (float64)."""
        return self.target(k, v, **self._keywords(cov))


def _closed_form_scheme(family: str, title: str, alpha: float = 1.0) -> Scheme:
    """Draws N(0, v S / mean(diag S)) of the family's closed form S, sigma on the depth schedule."""
    return Scheme(family, f"closed-form {title} covariance, sigma grows with depth", _draw_covariance,
                  _scaled_covariance, closed_form=ClosedForm(family, alpha))


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("default", "PyTorch default: i.i.d. uniform U(-b, b)", _draw_uniform, native=True),
        Scheme("kaiming_normal", "i.i.d. normal (Kaiming normal shape)", _draw_normal),
        Scheme("orthogonal", "orthogonal rows of the C x k^2 filter matrix", _draw_orthogonal),
        _closed_form_scheme("gaussian", "Gaussian"),
        _closed_form_scheme("laplace", "Laplace"),
        _closed_form_scheme("matern32", "Matern 3/2"),
        _closed_form_scheme("matern52", "Matern 5/2"),
        _closed_form_scheme("rational-quadratic", "rational quadratic (alpha = 1)", alpha=1.0),
        Scheme("learned", "covariances learned by a trained network, transferred",
               _draw_covariance, _scaled_covariance, needs_source=True),
        Scheme("impulse", "a single one at a random position (Zheng et al. 2024)",
               _draw_box, _box_covariance, params={"pixels": 1}),
        Scheme("box-3", "three random pixels at one constant value (Zheng et al. 2024)",
               _draw_box, _box_covariance, params={"pixels": 3}),
        Scheme("gaussian-bump", "a Gaussian bump at a random centre (Zheng et al. 2024)",
               _draw_gaussian_bump, _bump_covariance, closed_form=ClosedForm("gaussian")),
        Scheme("delta-orthogonal", "the centre impulse with a random sign (Xiao et al. 2018)",
               _draw_delta_orthogonal, _delta_covariance),
        Scheme("all-pass", "Cayley transform of a random skew filter, truncated (Trockman & Kolter 2021)",
               _draw_allpass, partial(_estimated_covariance, draw=_draw_allpass)),
        Scheme("mimetic", "self-attention W_q W_k^T ~ I per head, W_v W_proj ~ -I per layer (Trockman & Kolter "
               "2023)", apply=mimetic_, params=dict(MIMETIC_DEFAULTS)),
    )
}

#: The scheme that samples covariances the caller gives (a learned or an uploaded one).
LEARNED = "learned"


def get_scheme(name: str) -> Scheme:
    """The registered scheme called `name`; ValueError listing the valid names otherwise."""
    if name not in SCHEMES:
        raise ValueError(f"unknown init scheme {name!r}; choose one of: {', '.join(SCHEMES)}")
    return SCHEMES[name]


def scheme_names(level: str | None = None, *, with_source: bool = True) -> list[str]:
    """Registered names in registry order: every scheme, or those of one level ("depthwise" or
    "model"); with_source False leaves out those that need learned covariances."""
    if level is not None and level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    return [name for name, s in SCHEMES.items()
            if level in (None, s.level) and (with_source or not s.needs_source)]


def using_sigma(names) -> list[str]:
    """The schemes among `names` whose filters follow the sigma schedule."""
    return [name for name in names if get_scheme(name).uses_sigma]


def needing_source(names) -> list[str]:
    """The schemes among `names` that need learned covariances."""
    return [name for name in names if get_scheme(name).needs_source]


def _depthwise(name: str) -> Scheme:
    """The scheme called `name`, which must draw depthwise filters."""
    s = get_scheme(name)
    if s.level != "depthwise":
        raise ValueError(f"the {name!r} init sets a whole model ({s.description}), not depthwise filters; "
                         f"filter schemes: {', '.join(scheme_names('depthwise'))}")
    return s


def _target_variance(variance, shape: tuple[int, int]) -> float:
    """The number asked for, or "default": PyTorch's 1 / (3 fan_in), fan_in = kh kw."""
    if isinstance(variance, str):
        if variance != "default":
            raise ValueError(f"variance must be 'default' or a number > 0, got {variance!r}")
        return 1.0 / (3 * shape[0] * shape[1])
    return check_sigma(variance, "variance")


def _one_layer(scheme: Scheme, k: int, sigma, covariance):
    """The covariance of one k x k layer: the closed form at `sigma` (default: the first layer's),
    the learned `covariance` resized to k, or None."""
    return scheme.layer_covariances([k], sigma, None, None if covariance is None else [covariance])[0]


def sample_scheme(scheme: str, kernel_size: int, n: int, *, sigma: float | None = None,
                  covariance: Tensor | None = None, variance="default",
                  generator: torch.Generator | None = None) -> Tensor:
    """n filters (n, k, k) as `scheme` draws them for one depthwise layer (e.g. for a gallery).

    The sigma schemes use `sigma` (default: the first layer's); learned uses `covariance` resized to k.
    """
    s = _depthwise(scheme)
    k = check_kernel_size(kernel_size)
    cov = _one_layer(s, k, sigma, covariance)
    n = whole_number(n, "number of filters", 1)
    return s.filters((k, k), n, _target_variance(variance, (k, k)), cov, generator)


def scheme_covariance(scheme: str, kernel_size: int, *, sigma: float | None = None,
                      covariance: Tensor | None = None, variance="default") -> Tensor:
    """The k^2 x k^2 covariance E[w w^T] - E[w] E[w]^T of the filters sample_scheme draws with the
    same arguments (float64): exact for every scheme but all-pass, whose has no closed form and is
    estimated from REFERENCE_FILTERS filters."""
    s = _depthwise(scheme)
    k = check_kernel_size(kernel_size)
    return s.covariance_of(k, _target_variance(variance, (k, k)), _one_layer(s, k, sigma, covariance))


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
    s = _depthwise(scheme)
    layers = depthwise_convs(model)
    if not layers:
        raise ValueError(
            "model has no depthwise convolutions (Conv2d with groups == in_channels > 1 and a kernel "
            "larger than 1 x 1); nothing to initialize"
        )
    kernel_sizes = [max(conv.kernel_size) for _, conv in layers]
    covs = s.layer_covariances(kernel_sizes, sigma_first, sigma_last, covariances)
    for (_, conv), cov in zip(layers, covs):
        shape = tuple(conv.kernel_size)
        filters = s.filters(shape, conv.out_channels, _target_variance(variance, shape), cov, generator)
        conv.weight.copy_(filters.reshape(conv.weight.shape).to(conv.weight))
    return [name for name, _ in layers]


@torch.no_grad()
def init_model_(model: nn.Module, scheme: str, *, sigma_first: float | None = None,
                sigma_last: float | None = None, covariances: list[Tensor] | None = None,
                generator: torch.Generator | None = None) -> list[str]:
    """Initialize `model` in place as `scheme` says; return the names of the layers set. A model-level
    scheme applies to the whole model (mimetic_ with its params); a depthwise one draws every depthwise
    conv's filters (init_depthwise_), but the native one leaves a model without them as built ([])."""
    s = get_scheme(scheme)
    if s.level == "model":
        return s.apply(model, **s.params, generator=generator)
    if s.native and not depthwise_convs(model):
        return []
    return init_depthwise_(model, scheme, sigma_first=sigma_first, sigma_last=sigma_last,
                           covariances=covariances, generator=generator)
