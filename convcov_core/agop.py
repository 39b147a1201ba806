"""Patch-AGOP: the average gradient outer product of a model with respect to a conv layer's input patches.

For a conv layer z = conv(h, W) every output position (i, j) sees one input patch
p_ij, and z_ij = W p_ij + b with W the weight reshaped to (c_out, c_in k^2). Hence
grad_{p_ij} f = W^T g_ij with g_ij = df/dz_ij, and

    M = (1/n) sum_x sum_(i,j) grad_{p_ij} f grad_{p_ij} f^T = W^T G W / n,   G = sum_x sum_ij g_ij g_ij^T,

so one backward pass to the layer's *output* gives M for any stride, padding or dilation; the
patches are never materialized. Depthwise layers (groups == c_in, c_out = m c_in) have one patch
per channel c feeding only the m output channels of group c: M_c = W_c^T G_c W_c with W_c the
(m, k^2) filters of group c, and the returned matrix is the average of M_c over channels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .validation import whole_number

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


def find_conv(model: nn.Module, layer_name: str) -> nn.Conv2d:
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


def flat_weight(conv: nn.Conv2d) -> torch.Tensor:
    """Weight as (c_out, c_in k^2) (regular) or (c_out, k^2) (depthwise), float64, detached."""
    return conv.weight.detach().to(torch.float64).reshape(conv.out_channels, -1)


# ---------------------------------------------------------------------------------------------
# Patch-AGOP


def _check_outputs(outputs):
    """'all', 'predicted', or a non-negative output index as an int."""
    if isinstance(outputs, str):
        if outputs not in OUTPUT_CHOICES:
            raise ValueError(f"outputs must be 'all', 'predicted' or an output index, got {outputs!r}")
        return outputs
    return whole_number(outputs, "outputs (an output index)", 0)


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
    weight = flat_weight(conv).to(gram.device)
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

def patch_agops(
    model: nn.Module,
    convs: dict[str, nn.Conv2d],
    inputs: torch.Tensor,
    outputs,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> dict[str, torch.Tensor]:
    """Patch-AGOP of several layers at once: one forward and one backward per selected output."""
    outputs = _check_outputs(outputs)
    batch_size = whole_number(batch_size, "batch_size", 1)
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
                _add_batch_grams(model, convs, x, outputs, captured, grams)
                captured.clear()
                if progress is not None:
                    progress(min(start + batch_size, inputs.shape[0]), inputs.shape[0])
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return _agops_from_grams(convs, grams, inputs.shape[0])


def _add_batch_grams(
    model: nn.Module,
    convs: dict[str, nn.Conv2d],
    x: torch.Tensor,
    outputs,
    captured: list[tuple[str, torch.Tensor]],
    grams: dict[str, torch.Tensor],
) -> None:
    """One batch: forward (the hooks fill `captured` with each layer's output z), then one backward
    per selected output scalar, adding each layer's gradient gram to grams[name]."""
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


def _agops_from_grams(
    convs: dict[str, nn.Conv2d], grams: dict[str, torch.Tensor], n_inputs: int
) -> dict[str, torch.Tensor]:
    """Each layer's M from its summed gradient gram; zeros for a layer the output does not depend on."""
    result = {}
    for name, conv in convs.items():
        if name not in grams:  # the output does not depend on this layer
            side = flat_weight(conv).shape[1]
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
    conv = find_conv(model, layer_name)
    agops = patch_agops(model, {layer_name: conv}, inputs, outputs, batch_size, progress)
    return agops[layer_name]
