"""How much arithmetic a training run is, known before it starts.

The forward pass of one image is counted by torch.utils.flop_counter on the meta device (nothing is
allocated, nothing computed): convolutions (a depthwise one as 2 C k^2 H W, which the counter gets
right for the forward pass), matmuls and attention. One training image costs about 3 forward passes
(the backward pass computes the gradients of activations and of weights, each about one forward),
so a run trains on 3 F x images FLOPs: steps x batch images, evaluation not included.

One training step by layer type (step_sites, step_work), for a roofline (benchmarks/roofline.py):
FLOPs and the bytes each pass must move at least (every input read once, every output written
once). Convolutions and the linear head by formula, each pass 2 x multiply-adds (a depthwise
backward too: torch.utils.flop_counter counts a grouped convolution_backward far above its work);
BatchNorm, GELU and the residual add by their tensors (ELEMENTWISE); AdamW by its fp32 state.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from . import models
from .train import TrainConfig, load_training_data, plan_steps

TRAINING_PASSES = 3  # forward, gradient of the activations, gradient of the weights


def network_for(config: TrainConfig, info) -> torch.nn.Module:
    """config's network for its training data's images and classes (`info`), on the default device."""
    return models.build_model(config.model, num_classes=len(info.classes), in_chans=info.in_chans,
                              kernel_size=config.kernel_size, patch_size=config.patch_size,
                              image_size=info.image_size)


def meta_model(config: TrainConfig) -> torch.nn.Module:
    """network_for(config) on the meta device: its shapes, no memory. The data is read first, outside
    the meta device (read inside, its cached tensors would be meta tensors)."""
    info = load_training_data(config)[4]
    with torch.device("meta"):
        return network_for(config, info)


def forward_flops(model: torch.nn.Module, in_chans: int, image_size: int) -> int:
    """FLOPs (a multiply-add counts 2) of one image's forward pass through `model`, on the device
    of its parameters (the meta device for meta_model's)."""
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, in_chans, image_size, image_size, device=device))
    return counter.get_total_flops()


def _per_image_flops(config: TrainConfig) -> int:
    """forward_flops of config's network: on the meta device, or on the CPU for a network with
    operations the meta device lacks (NIFF's complex FFTs; their FLOPs are not counted). ValueError
    for a network that does not take the images at all."""
    info = load_training_data(config)[4]
    try:
        return forward_flops(meta_model(config), info.in_chans, info.image_size)
    except (RuntimeError, NotImplementedError):
        pass
    try:
        with torch.no_grad():
            return forward_flops(network_for(config, info), info.in_chans, info.image_size)
    except RuntimeError as err:
        raise ValueError(f"{config.model} does not take {config.dataset}'s {info.image_size} x {info.image_size} "
                         f"images ({' '.join(str(err).split())[:160]})") from None


_TRAINING_IMAGES: dict[str, int] = {}  # training set size by dataset, its parameters and data root


def images_per_run(config: TrainConfig) -> int:
    """Images one run trains on: steps x batch (full batches of every epoch, or max_steps)."""
    data = json.dumps([config.dataset, config.dataset_params, config.data_root], sort_keys=True, default=str)
    if data not in _TRAINING_IMAGES:
        _TRAINING_IMAGES[data] = len(load_training_data(config)[1])
    batch, _, total = plan_steps(config, _TRAINING_IMAGES[data])
    return batch * total


def total_work(configs) -> tuple[int, float]:
    """(training images, FLOPs) of all `configs` together: images_per_run and run_flops of each,
    counted once per distinct shape of run (the init, seed and filter mode change no arithmetic)."""
    per_shape: dict[str, tuple[int, float]] = {}
    images = flops = 0
    for config in configs:
        shape = json.dumps(config.replace(seed=0, init="default", sigma_first=None, sigma_last=None,
                                          covariances=None, freeze_filters=False).to_dict(), sort_keys=True)
        if shape not in per_shape:
            per_shape[shape] = images_per_run(config), run_flops(config)
        images, flops = images + per_shape[shape][0], flops + per_shape[shape][1]
    return images, flops


def run_flops(config: TrainConfig) -> float:
    """FLOPs one run of config trains with: TRAINING_PASSES x forward FLOPs x images_per_run."""
    return float(TRAINING_PASSES * _per_image_flops(config) * images_per_run(config))


#: (FLOPs, tensors of the layer's size moved) per element of each elementwise pass, a transcendental
#: counted as one FLOP. BatchNorm forward: sums of x and x^2 (3), y = a x + b (2); reads x, writes y.
#: Its backward: x_hat = a' x + b' (2), sums of g and g x_hat (3), dx = s g + t x_hat + u (4); reads
#: g and x, writes dx. GELU x Phi(x): forward 4 (x / sqrt 2, erf, 1 +, x / 2 *), backward
#: g (Phi(x) + x phi(x)) 8. The residual add, z = f(x) + x, forward and in the backward (the skip's
#: gradient summed with the branch's): 1 FLOP each, two tensors read and one written each.
ELEMENTWISE = {"batchnorm fwd": (5, 2), "batchnorm bwd": (9, 3), "gelu fwd": (4, 2), "gelu bwd": (8, 3),
               "residual add": (2, 6)}
#: AdamW per fp32 parameter: decay (1), first moment (3), second moment (4), update (4) FLOPs; reads
#: the parameter, its gradient and both moments, writes the parameter and the moments: 7 x 4 bytes.
ADAMW_FLOPS, ADAMW_BYTES = 12, 28
PASSES = {"depthwise": ("depthwise fwd", "depthwise dL/dx", "depthwise dL/dw"),
          "pointwise": ("pointwise fwd", "pointwise bwd"), "batchnorm": ("batchnorm fwd", "batchnorm bwd"),
          "gelu": ("gelu fwd", "gelu bwd"), "residual": ("residual add",)}


@dataclass(frozen=True)
class OpWork:
    """FLOPs and bytes moved of one pass (or a sum of passes)."""

    flops: float
    bytes: float

    def __add__(self, other: "OpWork") -> "OpWork":
        return OpWork(self.flops + other.flops, self.bytes + other.bytes)


@dataclass(frozen=True)
class Site:
    """One layer as a training step runs it: its kind (a key of PASSES), the module, the shapes of its
    input and output, the input's dtype and whether the step needs dL/d(input) (not for the images)."""

    kind: str
    module: nn.Module
    in_shape: tuple
    out_shape: tuple
    dtype: torch.dtype
    input_grad: bool


def _kind(module: nn.Module) -> str | None:
    """depthwise: a Conv2d with one filter per channel; pointwise: every other Conv2d (a 1 x 1 conv,
    or the patch stem: a 1 x 1 conv on p x p patches) and Linear (a 1 x 1 conv on a 1 x 1 map)."""
    if isinstance(module, nn.Conv2d):
        return "depthwise" if module.groups == module.in_channels == module.out_channels > 1 else "pointwise"
    kinds = {nn.Linear: "pointwise", nn.BatchNorm2d: "batchnorm", nn.GELU: "gelu", models.Residual: "residual"}
    return kinds.get(type(module))


def step_sites(model: nn.Module, x: torch.Tensor) -> list[Site]:
    """Every layer of model(x) that site_work counts, in the order they run (model(x) runs once: call
    it on the meta device, or under the step's autocast for the dtypes the step runs in)."""
    sites, hooks = [], []

    def record(module, args, out):
        sites.append(Site(_kind(module), module, tuple(args[0].shape), tuple(out.shape), args[0].dtype,
                          args[0].requires_grad))

    for module in model.modules():
        if _kind(module) is not None:
            hooks.append(module.register_forward_hook(record))
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return sites


def site_work(site: Site, element_bytes: int) -> dict[str, OpWork]:
    """{pass: OpWork} of one site in a training step, activations of element_bytes each. A conv or
    linear pass (forward, dL/dx or dL/dw) is 2 x out x (fan-in) FLOPs and moves its input, output and
    weight once; dL/dx only where the step needs it, dL/dw only for a trained weight."""
    n_in, n_out = math.prod(site.in_shape), math.prod(site.out_shape)
    if site.kind in ("depthwise", "pointwise"):
        weight = site.module.weight
        one = OpWork(2 * n_out * math.prod(weight.shape[1:]), (n_in + n_out + weight.numel()) * element_bytes)
        zero, dx, dw = OpWork(0, 0), site.input_grad, weight.requires_grad
        if site.kind == "depthwise":
            return dict(zip(PASSES["depthwise"], (one, one if dx else zero, one if dw else zero)))
        return {"pointwise fwd": one, "pointwise bwd": OpWork((dx + dw) * one.flops, (dx + dw) * one.bytes)}
    return {name: OpWork(ELEMENTWISE[name][0] * n_out, ELEMENTWISE[name][1] * n_out * element_bytes)
            for name in PASSES[site.kind]}


def step_work(sites: list[Site], element_bytes: int, n_params: int) -> dict[str, OpWork]:
    """{pass: OpWork} of one training step: site_work summed over the sites, and AdamW over n_params
    trained fp32 parameters."""
    rows: dict[str, OpWork] = {}
    for site in sites:
        for name, work in site_work(site, element_bytes).items():
            rows[name] = rows.get(name, OpWork(0, 0)) + work
    return {**rows, "adamw": OpWork(ADAMW_FLOPS * n_params, ADAMW_BYTES * n_params)}
