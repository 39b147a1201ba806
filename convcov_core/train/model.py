"""The network of a run: built from its config with the depthwise filters initialized, made ready for
the training device, and its filters' covariances read at the end.

Depthwise filters are initialized by `init.init_depthwise_`; with `freeze_filters` they are never
updated. On CPU, depthwise convs take their filter gradient from a swapped convolution (depthwise.py:
all of them under bf16, from 7 x 7 on in fp32).
"""

from __future__ import annotations

import torch

from .. import covariance, init, models
from ..depthwise import SWAPPED_MIN_TAPS, use_fast_depthwise
from ..step import autocast_dtype
from .config import TrainConfig
from .inputs import _channels_last

Tensor = torch.Tensor


def build_model_for(config: TrainConfig, info) -> torch.nn.Module:
    """The config's model with its depthwise filters initialized, seeded by config.seed (global RNG
    state of the caller is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = models.build_model(config.model, num_classes=len(info.classes), in_chans=info.in_chans,
                                   kernel_size=config.kernel_size, patch_size=config.patch_size)
    generator = torch.Generator().manual_seed(config.seed)
    init.init_depthwise_(model, config.init, sigma_first=config.sigma_first,
                         sigma_last=config.sigma_last, covariances=config.covariances,
                         generator=generator)
    return model


def size_label(size: int | None) -> str:
    """A config's kernel or patch size as setup lines print it; None keeps the model's own."""
    return "its own" if size is None else str(size)


def model_label(config: TrainConfig) -> str:
    """'convmixer-64/6 (kernel 9, patch 2)', as messages name a config's model."""
    return f"{config.model} (kernel {size_label(config.kernel_size)}, patch {size_label(config.patch_size)})"


def _prepare_model(config: TrainConfig, model: torch.nn.Module | None, info,
                   device: torch.device) -> tuple[torch.nn.Module, torch.dtype | None, bool]:
    """(model, autocast dtype, channels_last): `model`, or build_model_for(config) when None, checked
    against the images, its depthwise filters frozen when the config says so, on CPU with the fast
    depthwise backward, moved to the device in its layout and in train mode."""
    if model is None:
        model = build_model_for(config, info)
    models.check_input_size(model, info.in_chans, info.image_size, model_label(config), config.dataset)
    if config.freeze_filters:
        for _, conv in init.depthwise_convs(model):
            conv.weight.requires_grad_(False)
    dtype = autocast_dtype(config.precision, device)
    if device.type == "cpu":
        use_fast_depthwise(model, min_taps=1 if dtype == torch.bfloat16 else SWAPPED_MIN_TAPS)
    channels_last = _channels_last(device, model)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(device=device, memory_format=layout).train(), dtype, channels_last


def _final_covariances(model: torch.nn.Module) -> tuple[list[str], list[Tensor]]:
    """Names and centered covariances of the square depthwise layers (band filters such as 1 x 9
    have no k^2 x k^2 covariance to transfer); no covariances when a filter is not finite."""
    layers = [(name, conv) for name, conv in init.depthwise_convs(model)
              if conv.kernel_size[0] == conv.kernel_size[1]]
    names = [name for name, _ in layers]
    weights = [conv.weight.detach().float().cpu() for _, conv in layers]
    if not all(torch.isfinite(w).all() for w in weights):
        return names, []
    return names, [covariance.empirical(w, centered=True) for w in weights]
