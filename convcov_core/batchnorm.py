"""BatchNorm statistics that describe the trained network ("precise BN").

During training each BatchNorm layer keeps running statistics as an exponential average with
momentum 0.1, i.e. over roughly the last 10-20 steps of a network that kept changing. After a
short run, or with a learning rate annealed to 0, they need not describe the final weights: a
network whose training loss says it learned can sit near chance in eval mode. recalibrate_bn_
resets them and sets each to the cumulative average over training batches passed through the
final network in train mode without gradients (PyTorch's momentum=None):

    running_mean = (1 / B) sum_b mean_b,    running_var = (1 / B) sum_b var_b   (unbiased per batch)

as in Wu & Johnson, "Rethinking 'Batch' in BatchNorm" (2021). Only the statistics change; weights,
and any other module state, are left as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .step import autocast

Tensor = torch.Tensor

#: Training images averaged over by default (in batches of the training batch size).
PRECISE_BN_IMAGES = 2048


def batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """The model's BatchNorm layers that keep running statistics (timm's BatchNormAct2d included)."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def bn_state(model: nn.Module) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Copies of every BatchNorm layer's (running_mean, running_var, num_batches_tracked)."""
    return [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
            for bn in batchnorms(model)]


@torch.no_grad()
def load_bn_state_(model: nn.Module, state: list[tuple[Tensor, Tensor, Tensor]]) -> None:
    """Put back statistics taken by bn_state, in place (tensors captured by a CUDA graph stay valid)."""
    for bn, (mean, var, count) in zip(batchnorms(model), state, strict=True):
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.num_batches_tracked.copy_(count)


@torch.no_grad()
def recalibrate_bn_(model: nn.Module, batches, *, dtype: torch.dtype | None = None) -> int:
    """Reset the running statistics of every BatchNorm layer and average them over `batches`
    (an iterable of input tensors, N x C x H x W), in place; return how many batches were used
    (0 when the model has no BatchNorm: nothing to do). The model's train/eval mode is restored."""
    layers = batchnorms(model)
    if not layers:
        return 0
    momenta = [bn.momentum for bn in layers]
    was_training = model.training
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    used = 0
    try:
        for x in batches:
            with autocast(x.device, dtype):
                model(x)
            used += 1
    finally:
        for bn, momentum in zip(layers, momenta):
            bn.momentum = momentum
        model.train(was_training)
    if used == 0:
        raise ValueError("recalibrating BatchNorm statistics needs at least one batch of images")
    return used


def training_batches(x: Tensor, batch_size: int, n_images: int = PRECISE_BN_IMAGES, *,
                     seed: int = 0, as_batch=None):
    """Batches of batch_size training images drawn without replacement (a permutation seeded by
    `seed`), full batches only, at most n_images (at least one batch); `as_batch(x, idx)` gathers
    one (default: x[idx])."""
    n = len(x)
    batch = min(batch_size, n)
    count = max(1, min(n_images, n) // batch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: count * batch].to(x.device)
    gather = as_batch or (lambda images, idx: images.index_select(0, idx))
    for i in range(count):
        yield gather(x, order[i * batch:(i + 1) * batch])
