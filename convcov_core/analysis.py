"""Analyses of trained filters: patch-AGOP and the CNFA check (seed 001), spectra and effective size (seed 002).

Patch-AGOP. For a conv layer z = conv(h, W) every output position (i, j) sees one input patch
p_ij, and z_ij = W p_ij + b with W the weight reshaped to (c_out, c_in k^2). Hence
grad_{p_ij} f = W^T g_ij with g_ij = df/dz_ij, and

    M = (1/n) sum_x sum_(i,j) grad_{p_ij} f grad_{p_ij} f^T = W^T G W / n,   G = sum_x sum_ij g_ij g_ij^T,

so one backward pass to the layer's *output* gives M for any stride, padding or dilation; the
patches are never materialized. Depthwise layers (groups == c_in, c_out = m c_in) have one patch
per channel c feeding only the m output channels of group c: M_c = W_c^T G_c W_c with W_c the
(m, k^2) filters of group c, and the returned matrix is the average of M_c over channels.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "patch_agop",
    "cnfm",
    "pearson",
    "cosine",
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

OUTPUT_CHOICES = ("all", "predicted")


# ---------------------------------------------------------------------------------------------
# Layers


def conv_kind(conv: nn.Conv2d) -> str:
    """'regular' (groups == 1) or 'depthwise' (groups == c_in); ValueError for other groupings."""
    if conv.groups == 1:
        return "regular"
    if conv.groups == conv.in_channels:
        return "depthwise"
    raise ValueError(
        f"grouped convolutions with groups={conv.groups} (in_channels={conv.in_channels}) are not "
        "supported: patch-AGOP is defined here for regular (groups=1) and depthwise "
        "(groups=in_channels) layers"
    )


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """(name, module) of every Conv2d in `model` that is regular or depthwise, in module order."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.groups in (1, module.in_channels):
            found.append((name, module))
    return found


def _find_conv(model: nn.Module, layer_name: str) -> nn.Conv2d:
    modules = dict(model.named_modules())
    valid = [name for name, _ in conv_layers(model)]
    if layer_name not in modules:
        raise ValueError(f"unknown layer {layer_name!r}; conv layers of this model: {valid}")
    conv = modules[layer_name]
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(
            f"layer {layer_name!r} is a {type(conv).__name__}, not a Conv2d; conv layers: {valid}"
        )
    conv_kind(conv)
    return conv


def _flat_weight(conv: nn.Conv2d) -> torch.Tensor:
    """Weight as (c_out, c_in k^2) (regular) or (c_out, k^2) (depthwise), float64, detached."""
    return conv.weight.detach().to(torch.float64).reshape(conv.out_channels, -1)


# ---------------------------------------------------------------------------------------------
# Patch-AGOP


def _whole_number(value, name: str, minimum: int) -> int:
    """`value` as an int (Python or NumPy integer, not bool) >= minimum, else ValueError."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return number


def _check_outputs(outputs):
    """'all', 'predicted', or a non-negative output index as an int."""
    if isinstance(outputs, str):
        if outputs not in OUTPUT_CHOICES:
            raise ValueError(f"outputs must be 'all', 'predicted' or an output index, got {outputs!r}")
        return outputs
    return _whole_number(outputs, "outputs (an output index)", 0)


def _selected_outputs(out: torch.Tensor, outputs) -> list[torch.Tensor]:
    """Scalars whose gradients are summed as outer products: one per output unit for 'all'.

    Each scalar sums one output over the batch; inputs do not interact in eval mode, so its
    gradient at z holds every input's own gradient.
    """
    out = out.reshape(out.shape[0], -1)
    n_out = out.shape[1]
    if outputs == "all":
        return [out[:, k].sum() for k in range(n_out)]
    if outputs == "predicted":
        predicted = out.detach().argmax(dim=1, keepdim=True)
        return [out.gather(1, predicted).sum()]
    if not 0 <= outputs < n_out:
        raise ValueError(f"output index {outputs} out of range: the model has {n_out} outputs")
    return [out[:, outputs].sum()]


def _gradient_gram(conv: nn.Conv2d, grad_z: torch.Tensor) -> torch.Tensor:
    """sum over batch and positions of g g^T: (c_out, c_out), or (c_in, m, m) for depthwise.
    Computed in the model's dtype (a float32 model's gradients are float32 anyway), returned in
    float64 for the sum over batches."""
    g = grad_z.detach()
    if conv_kind(conv) == "regular":
        g = g.transpose(0, 1).reshape(conv.out_channels, -1)
        return (g @ g.T).to(torch.float64)
    mult = conv.out_channels // conv.in_channels
    g = g.reshape(g.shape[0], conv.in_channels, mult, -1)
    if mult == 1:  # one filter per channel: the gram is each channel's sum of squares
        return g.pow(2).sum(dim=(0, 3))[..., None].to(torch.float64)
    return torch.einsum("bcmp,bcnp->cmn", g, g).to(torch.float64)


def _agop_from_gram(conv: nn.Conv2d, gram: torch.Tensor, n_inputs: int) -> torch.Tensor:
    """M = W^T G W / n (regular) or mean_c W_c^T G_c W_c / n (depthwise)."""
    weight = _flat_weight(conv).to(gram.device)
    if conv_kind(conv) == "regular":
        return (weight.T @ gram @ weight / n_inputs).cpu()
    mult = conv.out_channels // conv.in_channels
    per_group = weight.reshape(conv.in_channels, mult, -1)
    agop = torch.einsum("cmi,cmn,cnj->ij", per_group, gram, per_group)
    return (agop / (n_inputs * conv.in_channels)).cpu()


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    param = next(model.parameters(), None)
    if param is None:
        return torch.device("cpu"), torch.get_default_dtype()
    return param.device, param.dtype


def _check_inputs(inputs) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or inputs.shape[0] == 0:
        raise ValueError("inputs must be a non-empty tensor batch of shape (N, C, H, W)")


def _patch_agops(
    model: nn.Module,
    convs: dict[str, nn.Conv2d],
    inputs: torch.Tensor,
    outputs,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> dict[str, torch.Tensor]:
    """Patch-AGOP of several layers at once: one forward and one backward per selected output."""
    outputs = _check_outputs(outputs)
    batch_size = _whole_number(batch_size, "batch_size", 1)
    _check_inputs(inputs)
    device, dtype = _model_device_dtype(model)
    captured: list[tuple[str, torch.Tensor]] = []

    def capture(name):
        def hook(_module, _args, z):
            captured.append((name, z))

        return hook

    handles = [conv.register_forward_hook(capture(name)) for name, conv in convs.items()]
    modes = {module: module.training for module in model.modules()}
    grams: dict[str, torch.Tensor] = {}
    model.eval()
    try:
        with torch.enable_grad():
            for start in range(0, inputs.shape[0], batch_size):
                captured.clear()
                x = inputs[start : start + batch_size].to(device=device, dtype=dtype)
                # An input that requires grad keeps z in the graph even when parameters are frozen.
                out = model(x.detach().requires_grad_(True))
                unused = sorted(set(convs) - {name for name, _ in captured})
                if unused:
                    raise ValueError(f"layer(s) {unused} were not used in the model's forward pass")
                scalars = _selected_outputs(out, outputs)
                for i, scalar in enumerate(scalars):
                    grads = torch.autograd.grad(
                        scalar,
                        [z for _, z in captured],
                        retain_graph=i + 1 < len(scalars),
                        allow_unused=True,
                    )
                    for (name, _), grad in zip(captured, grads):
                        if grad is not None:
                            gram = _gradient_gram(convs[name], grad)
                            grams[name] = grams[name] + gram if name in grams else gram
                del out, scalars
                captured.clear()
                if progress is not None:
                    progress(min(start + batch_size, inputs.shape[0]), inputs.shape[0])
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    n_inputs = inputs.shape[0]
    result = {}
    for name, conv in convs.items():
        if name not in grams:  # the output does not depend on this layer
            side = _flat_weight(conv).shape[1]
            result[name] = torch.zeros(side, side, dtype=torch.float64)
        else:
            result[name] = _agop_from_gram(conv, grams[name], n_inputs)
    return result


def patch_agop(
    model: nn.Module,
    layer_name: str,
    inputs: torch.Tensor,
    *,
    outputs="all",
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """AGOP of the model's output with respect to the input patches of conv layer `layer_name`.

    M = (1/n) sum_x sum_(i,j) grad_{p_ij} f(x) grad_{p_ij} f(x)^T, computed as W^T G W / n from the
    gradient at the layer's output (see the module docstring); never unfolds patches.

    outputs: "all" sums the AGOP of every output unit (one backward each, exact); an int uses that
    output; "predicted" uses each input's argmax output. The model runs in eval mode (restored
    afterwards), inputs are processed `batch_size` at a time (on the model's device and dtype),
    no parameter .grad is touched, and progress(done, total) is called after every batch.

    Returns float64 (c_in k^2, c_in k^2) for a regular conv, (k^2, k^2) averaged over channels for
    a depthwise conv. Patch entries are ordered (channel, row, column) like weight.reshape(c_out, -1).
    """
    conv = _find_conv(model, layer_name)
    agops = _patch_agops(model, {layer_name: conv}, inputs, outputs, batch_size, progress)
    return agops[layer_name]


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
    weight = _flat_weight(conv)
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


def cnfa_report(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    outputs="all",
    layers=None,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Per conv layer: the CNFA check r = pearson(patch-AGOP, CNFM), with both matrices.

    Each row: name, kind ('regular'/'depthwise'), in_channels, out_channels, kernel_size, stride,
    matrix_size, r (Pearson), cosine (uncentered, as in the seed's Fig. 9), agop, cnfm (tensors, for
    heatmaps; drop them to make a table). layers: names to include (default: every regular or
    depthwise Conv2d). All layers share one forward/backward pass per batch; progress as in
    patch_agop.
    """
    available = dict(conv_layers(model))
    if layers is None:
        names = list(available)
        if not names:
            raise ValueError("the model has no regular or depthwise Conv2d layer")
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        if not names:
            raise ValueError("layers is empty; pass None for every conv layer")
    convs = {name: _find_conv(model, name) for name in names}
    agops = _patch_agops(model, convs, inputs, outputs, batch_size, progress)
    rows = []
    for name, conv in convs.items():
        feature_matrix = cnfm(conv)
        rows.append(
            {
                "name": name,
                "kind": conv_kind(conv),
                "in_channels": conv.in_channels,
                "out_channels": conv.out_channels,
                "kernel_size": conv.kernel_size[0]
                if conv.kernel_size[0] == conv.kernel_size[1]
                else tuple(conv.kernel_size),
                "stride": conv.stride[0] if conv.stride[0] == conv.stride[1] else tuple(conv.stride),
                "matrix_size": feature_matrix.shape[0],
                "r": pearson(agops[name], feature_matrix),
                "cosine": cosine(agops[name], feature_matrix),
                "agop": agops[name],
                "cnfm": feature_matrix,
            }
        )
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
    largest magnitude is positive.
    """
    M = _square_matrix(M)
    side = in_chans * kernel_size * kernel_size
    if M.shape[0] != side:
        raise ValueError(
            f"M is {M.shape[0]} x {M.shape[0]}, but in_chans={in_chans}, kernel_size={kernel_size} "
            f"needs {side} x {side}"
        )
    n = _whole_number(n, "n", 1)
    if n > side:
        raise ValueError(f"n must be at most {side} (the size of M), got {n}")
    values, vectors = torch.linalg.eigh((M + M.T) / 2)
    values, vectors = values.flip(0)[:n], vectors.flip(1)[:, :n].T
    peak = vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True))
    vectors = vectors * torch.where(peak < 0, -1.0, 1.0)
    return values, vectors.reshape(n, in_chans, kernel_size, kernel_size)


# ---------------------------------------------------------------------------------------------
# Frequency view (seed 002)


def _filter_stack(filters) -> torch.Tensor:
    """(N, kh, kw) float64 from (N, kh, kw), (C, 1, kh, kw) or one (kh, kw) filter."""
    f = torch.as_tensor(filters).detach().to(device="cpu", dtype=torch.float64)
    if f.dim() == 4 and f.shape[1] == 1:
        f = f[:, 0]
    elif f.dim() == 2:
        f = f[None]
    if f.dim() != 3 or f.shape[0] == 0 or f.shape[1] == 0 or f.shape[2] == 0:
        shape = tuple(torch.as_tensor(filters).shape)
        raise ValueError(f"filters must be (N, k, k), (C, 1, k, k) or one (k, k) filter, got {shape}")
    if not torch.isfinite(f).all():
        raise ValueError("filters contain NaN or infinite values")
    return f


def spectrum(filters, size: int = 64) -> torch.Tensor:
    """Mean |FFT2| of the filters zero-padded to size x size, fftshifted (DC at [size//2, size//2]).

    Computed in float32 (a plot's precision) from the half spectrum that rfft2 gives:
    real filters have |F(u, v)| = |F(-u, -v)|, which fills in the other half. Returns float64.
    """
    f = _filter_stack(filters)
    size = _whole_number(size, "size (the FFT side)", max(f.shape[1:]))
    half = torch.fft.rfft2(f.to(torch.float32), s=(size, size)).abs().mean(dim=0)
    mirrored = half.flip(0).roll(1, dims=0)[:, 1:size - size // 2].flip(1)  # [u, v] = half[-u, -v]
    return torch.fft.fftshift(torch.cat([half, mirrored], dim=1)).to(torch.float64)


def radial_profile(spec) -> tuple[torch.Tensor, torch.Tensor]:
    """(radii, mean value on each ring) of a centred spectrum, for integer radii 0..min(H, W)//2.

    Ring r holds the pixels whose distance to the centre [H//2, W//2] rounds to r; radii stop at
    the axis Nyquist frequency min(H, W)//2, beyond which rings are cut by the image border.
    """
    spec = torch.as_tensor(spec, dtype=torch.float64)
    if spec.dim() != 2 or min(spec.shape) < 2:
        raise ValueError(f"expected a 2-D spectrum of at least 2 x 2, got shape {tuple(spec.shape)}")
    height, width = spec.shape
    rows = torch.arange(height, dtype=torch.float64) - height // 2
    cols = torch.arange(width, dtype=torch.float64) - width // 2
    radius = torch.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2).round().long().flatten()
    r_max = min(height, width) // 2
    inside = radius <= r_max
    sums = torch.bincount(radius[inside], weights=spec.flatten()[inside], minlength=r_max + 1)
    counts = torch.bincount(radius[inside], minlength=r_max + 1)
    return torch.arange(r_max + 1), sums / counts


def half_max_frequency(profile, size: int) -> float | None:
    """Frequency (cycles/pixel) at which a radial profile (ring r at r / size cycles/pixel, as
    radial_profile gives it for a size x size spectrum) first falls below half its maximum after
    that maximum, interpolated linearly between rings; None when it never does (white noise)."""
    p = torch.as_tensor(profile, dtype=torch.float64).flatten()
    size = _whole_number(size, "size", 2)
    if p.numel() < 2 or not torch.isfinite(p).all() or p.max() <= 0:
        raise ValueError("expected a finite radial profile of at least 2 rings with a positive maximum")
    peak = int(p.argmax())
    half = 0.5 * float(p[peak])
    below = (p[peak:] < half).nonzero()
    if not below.numel():
        return None
    r = peak + int(below[0])
    before, after = float(p[r - 1]), float(p[r])
    return (r - 1 + (before - half) / (before - after)) / size


def effective_size(filters, energy: float = 0.9) -> torch.Tensor:
    """Per filter: side s of the smallest centred s x s square (s = 1, 3, ..., k) holding at least
    `energy` of the filter's energy (sum of squares). Returns an int64 tensor (N,).

    A centred delta gives 1; an all-zero filter gives 1. A constant k x k filter holds s^2/k^2 of
    its energy in the centred s x s square, so at energy=0.9 it gives k for k <= 37 and k - 2 from
    k = 39 on ((k-2)^2/k^2 >= 0.9 there). Needs square filters of odd size.
    """
    try:
        share = None if isinstance(energy, bool) else float(energy)
    except (TypeError, ValueError):
        share = None
    if share is None or not 0 < share <= 1:
        raise ValueError(f"energy must be a share in (0, 1], got {energy!r}")
    f = _filter_stack(filters)
    k = f.shape[1]
    if f.shape[2] != k or k % 2 == 0:
        raise ValueError(
            f"effective_size needs square filters of odd size, got {f.shape[1]} x {f.shape[2]}"
        )
    squared = f.pow(2)
    centre = k // 2
    sides = list(range(1, k + 1, 2))
    window = [slice(centre - s // 2, centre + s // 2 + 1) for s in sides]
    held = torch.stack([squared[:, w, w].sum(dim=(1, 2)) for w in window], dim=1)
    enough = held >= share * held[:, -1:]  # the s = k column is the total, so it always qualifies
    first = enough.to(torch.int64).argmax(dim=1)
    return torch.tensor(sides, dtype=torch.int64)[first]
