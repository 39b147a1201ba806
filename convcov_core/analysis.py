"""Analyses of trained filters: the CNFA check (seed 001) and views of a patch matrix M.

CNFM. For a conv layer with weight W reshaped to (c_out, c_in k^2) the convolutional neural feature
matrix is W^T W (depthwise: W^T W / c_out, the mean of w_c w_c^T over the filters). The CNFA says it
is close to the layer's patch-AGOP M (agop.py); cnfa_report measures r = pearson(M, CNFM) per layer.
feature_map and top_eigenvectors show what such a matrix picks out of an image.

Patch-AGOP itself lives in agop.py, spectra and effective sizes in spectra.py; the names imported from
them below are re-exported so that analysis.<name> keeps working for existing callers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# OUTPUT_CHOICES, conv_kind, conv_layers, patch_agop, effective_size, half_max_frequency, radial_profile
# and spectrum are re-exported for callers that still use analysis.<name> (and for __all__)
from .agop import (  # noqa: F401
    OUTPUT_CHOICES,
    conv_kind,
    conv_layers,
    find_conv,
    flat_weight,
    patch_agop,
    patch_agops,
)
from .spectra import effective_size, half_max_frequency, radial_profile, spectrum  # noqa: F401
from .validation import whole_number

__all__ = [
    "patch_agop",
    "cnfm",
    "pearson",
    "cosine",
    "CNFALayer",
    "cnfa_report",
    "conv_kind",
    "conv_layers",
    "feature_map",
    "psd_sqrt",
    "top_eigenvectors",
    "spectrum",
    "radial_profile",
    "effective_size",
]


# ---------------------------------------------------------------------------------------------
# CNFM and the CNFA check


def cnfm(conv: nn.Conv2d, centered: bool = False) -> torch.Tensor:
    """Convolutional neural feature matrix (seed 001), float64.

    Regular conv: W^T W with W (c_out, c_in k^2). Depthwise conv: W^T W / c_out with W (c_out, k^2),
    the average of w_c w_c^T over the layer's filters. centered=True subtracts the mean filter
    (over the rows of W) first.
    """
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"cnfm needs an nn.Conv2d, got {type(conv).__name__}")
    weight = flat_weight(conv)
    if centered:
        weight = weight - weight.mean(dim=0, keepdim=True)
    gram = weight.T @ weight
    return gram if conv_kind(conv) == "regular" else gram / conv.out_channels


def _flat_pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    if a.shape != b.shape:
        raise ValueError(f"cannot correlate tensors with {a.numel()} and {b.numel()} entries")
    if a.numel() < 2:
        raise ValueError("correlation needs at least two entries")
    return a, b


def pearson(a, b) -> float:
    """Pearson correlation of the flattened entries of a and b; nan if either is constant."""
    a, b = _flat_pair(a, b)
    a, b = a - a.mean(), b - b.mean()
    denominator = a.norm() * b.norm()
    return float(a @ b / denominator) if denominator > 0 else math.nan


def cosine(a, b) -> float:
    """Uncentered correlation (cosine similarity) of the flattened entries; nan if either is 0."""
    a, b = _flat_pair(a, b)
    denominator = a.norm() * b.norm()
    return float(a @ b / denominator) if denominator > 0 else math.nan


@dataclass(frozen=True)
class CNFALayer:
    """The CNFA check of one conv layer: what it is, r = pearson(patch-AGOP, CNFM), the cosine (uncentered,
    as in the seed's Fig. 9), and both matrices (for heatmaps)."""

    name: str
    kind: str  # "regular" or "depthwise"
    in_channels: int
    out_channels: int
    kernel_size: int | tuple[int, int]  # an int for a square kernel
    stride: int | tuple[int, int]
    matrix_size: int
    r: float
    cosine: float
    agop: torch.Tensor
    cnfm: torch.Tensor

    @property
    def channels(self) -> int:
        """The channels of the patches the matrices run over: a depthwise filter reads one."""
        return self.in_channels if self.kind == "regular" else 1


def _square_or_pair(pair: tuple[int, int]) -> int | tuple[int, int]:
    return pair[0] if pair[0] == pair[1] else tuple(pair)


def cnfa_report(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    outputs="all",
    layers=None,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> list[CNFALayer]:
    """The CNFA check of each conv layer. layers: names to include (default: every regular or depthwise
    Conv2d). All layers share one forward/backward pass per batch; progress as in patch_agop."""
    available = dict(conv_layers(model))
    if layers is None:
        names = list(available)
        if not names:
            raise ValueError("the model has no regular or depthwise Conv2d layer")
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        if not names:
            raise ValueError("layers is empty; pass None for every conv layer")
    convs = {name: find_conv(model, name) for name in names}
    agops = patch_agops(model, convs, inputs, outputs, batch_size, progress)
    rows = []
    for name, conv in convs.items():
        feature_matrix = cnfm(conv)
        rows.append(CNFALayer(
            name=name, kind=conv_kind(conv), in_channels=conv.in_channels, out_channels=conv.out_channels,
            kernel_size=_square_or_pair(conv.kernel_size), stride=_square_or_pair(conv.stride),
            matrix_size=feature_matrix.shape[0], r=pearson(agops[name], feature_matrix),
            cosine=cosine(agops[name], feature_matrix), agop=agops[name], cnfm=feature_matrix))
    return rows


# ---------------------------------------------------------------------------------------------
# Feature view and eigenvectors


def psd_sqrt(M) -> torch.Tensor:
    """Symmetric square root of a PSD matrix via eigh, negative eigenvalues clipped to 0 (float64)."""
    M = _square_matrix(M)
    values, vectors = torch.linalg.eigh((M + M.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def _square_matrix(M) -> torch.Tensor:
    M = torch.as_tensor(M, dtype=torch.float64)
    if M.dim() != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(M.shape)}")
    if not torch.isfinite(M).all():
        raise ValueError("matrix contains NaN or infinite entries")
    return M


def _conv_padding(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding the conv applies, including padding='same'/'valid'."""
    if conv.padding == "valid":
        return (0, 0, 0, 0)
    if conv.padding == "same":
        total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        return (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2)
    pad_h, pad_w = conv.padding
    return (pad_w, pad_w, pad_h, pad_h)


def feature_map(M, image_or_activation, conv: nn.Conv2d) -> torch.Tensor:
    """||M^(1/2) p_ij|| at every output position (i, j) of `conv` (seed 001's feature view).

    p_ij is the patch that conv reads at (i, j) (same padding, stride, dilation). Regular conv:
    M is (c_in k^2)^2. Depthwise conv: M is k^2 x k^2, applied to every channel's patch, and the
    value is sqrt(sum_c ||M^(1/2) p_c,ij||^2). The input is one image or activation: (C, H, W),
    (1, C, H, W), or (H, W) when C = 1. Returns (H', W') float64.
    """
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(
            f"feature_map needs the nn.Conv2d the patches belong to, got {type(conv).__name__}"
        )
    kind = conv_kind(conv)
    x = torch.as_tensor(image_or_activation).detach().to(device="cpu", dtype=torch.float64)
    if x.dim() == 2 and conv.in_channels == 1:
        x = x[None]
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != conv.in_channels:
        raise ValueError(
            f"expected one input of shape ({conv.in_channels}, H, W) for this layer, "
            f"got {tuple(torch.as_tensor(image_or_activation).shape)}"
        )
    patch_size = conv.kernel_size[0] * conv.kernel_size[1]
    side = patch_size * (conv.in_channels if kind == "regular" else 1)
    M = _square_matrix(M)
    if M.shape[0] != side:
        raise ValueError(
            f"M is {M.shape[0]} x {M.shape[0]}, but this {kind} layer's patches have {side} entries"
        )
    padding = _conv_padding(conv)
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    x = F.pad(x[None], padding, mode=mode)
    if x.shape[-2] < conv.dilation[0] * (conv.kernel_size[0] - 1) + 1 or (
        x.shape[-1] < conv.dilation[1] * (conv.kernel_size[1] - 1) + 1
    ):
        raise ValueError(f"input of size {tuple(x.shape[-2:])} (padded) is smaller than the kernel")
    patches = F.unfold(x, conv.kernel_size, dilation=conv.dilation, stride=conv.stride)[0]
    height = (x.shape[-2] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1) // conv.stride[0] + 1
    width = (x.shape[-1] - conv.dilation[1] * (conv.kernel_size[1] - 1) - 1) // conv.stride[1] + 1
    root = psd_sqrt(M)
    if kind == "regular":
        values = (root @ patches).norm(dim=0)
    else:
        per_channel = patches.reshape(conv.in_channels, patch_size, -1)
        values = torch.einsum("ij,cjl->cil", root, per_channel).pow(2).sum(dim=(0, 1)).sqrt()
    return values.reshape(height, width)


def top_eigenvectors(
    M, n: int, kernel_size: int, in_chans: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """The n largest eigenvalues of symmetric M and their eigenvectors as (n, in_chans, k, k) filters.

    Eigenvalues come in decreasing order; each eigenvector's sign is fixed so that its entry of
    largest magnitude is positive (the first of them where several tie within 1e-6 relative, so that
    rounding in the eigensolver cannot flip it).
    """
    M = _square_matrix(M)
    side = in_chans * kernel_size * kernel_size
    if M.shape[0] != side:
        raise ValueError(
            f"M is {M.shape[0]} x {M.shape[0]}, but in_chans={in_chans}, kernel_size={kernel_size} "
            f"needs {side} x {side}"
        )
    n = whole_number(n, "n", 1)
    if n > side:
        raise ValueError(f"n must be at most {side} (the size of M), got {n}")
    values, vectors = torch.linalg.eigh((M + M.T) / 2)
    values, vectors = values.flip(0)[:n], vectors.flip(1)[:, :n].T
    size = vectors.abs()
    largest = size >= size.amax(dim=1, keepdim=True) * (1 - 1e-6)
    peak = vectors.gather(1, largest.to(torch.uint8).argmax(dim=1, keepdim=True))  # argmax: the first of ties
    vectors = vectors * torch.where(peak < 0, -1.0, 1.0)
    return values, vectors.reshape(n, in_chans, kernel_size, kernel_size)
