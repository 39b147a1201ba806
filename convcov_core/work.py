"""How much arithmetic a training run is, known before it starts.

The forward pass of one image is counted by torch.utils.flop_counter on the meta device (nothing is
allocated, nothing computed): convolutions (a depthwise one as 2 C k^2 H W, which the counter gets
right for the forward pass), matmuls and attention. One training image costs about 3 forward passes
(the backward pass computes the gradients of activations and of weights, each about one forward),
so a run trains on 3 F x images FLOPs: steps x batch images, evaluation not included.
"""

from __future__ import annotations

import json

import torch
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


def images_per_run(config: TrainConfig) -> int:
    """Images one run trains on: steps x batch (full batches of every epoch, or max_steps)."""
    batch, _, total = plan_steps(config, len(load_training_data(config)[1]))
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
