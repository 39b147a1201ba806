"""The network of a run: built from its config with the depthwise filters initialized, made ready for
the training device, and its filters' covariances read at the end.

The model is initialized by `init.init_model_`: a depthwise scheme draws the depthwise filters (with
`freeze_filters` they are never updated), a model-level one such as mimetic sets a Vision Transformer's
attention weights, and the native default leaves a model without depthwise filters (a ViT) at its own
init. On CPU, depthwise
convs take their filter gradient from a swapped convolution (depthwise.py: all of them under bf16,
from 7 x 7 on in fp32). A NIFF model's filters come from its MLPs at
PyTorch's default init (no k x k weights to draw), and its covariances are read from its spatial
filters cropped to k x k (niff.centre_window).
"""

from __future__ import annotations

import math

import torch

from .. import covariance, init, models, niff
from ..depthwise import SWAPPED_MIN_TAPS, use_fast_depthwise
from ..step import autocast_dtype
from .config import TrainConfig
from .inputs import _channels_last, load_training_data

Tensor = torch.Tensor


def build_model_for(config: TrainConfig, info) -> torch.nn.Module:
    """The config's model for info's images, initialized by config.init and seeded by config.seed
    (global RNG state of the caller is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = models.build_model(config.model, num_classes=len(info.classes), in_chans=info.in_chans,
                                   kernel_size=config.kernel_size, patch_size=config.patch_size,
                                   image_size=info.image_size)
    if niff.niff_layers(model):  # its MLPs keep PyTorch's default init (TrainConfig.validate refuses others)
        return model
    init.init_model_(model, config.init, sigma_first=config.sigma_first, sigma_last=config.sigma_last,
                     covariances=config.covariances, generator=torch.Generator().manual_seed(config.seed))
    return model


def size_label(size: int | None) -> str:
    """A config's kernel or patch size as setup lines print it; None keeps the model's own."""
    return "its own" if size is None else str(size)


def model_label(config: TrainConfig) -> str:
    """'convmixer-64/6 (kernel 9, patch 2)', as messages name a config's model."""
    return f"{config.model} (kernel {size_label(config.kernel_size)}, patch {size_label(config.patch_size)})"


def prepare_model(config: TrainConfig, model: torch.nn.Module | None, info,
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
        for _, layer in niff.niff_layers(model):
            layer.requires_grad_(False)
    dtype = autocast_dtype(config.precision, device)
    if device.type == "cpu":
        use_fast_depthwise(model, min_taps=1 if dtype == torch.bfloat16 else SWAPPED_MIN_TAPS)
    channels_last = _channels_last(device, model)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(device=device, memory_format=layout).train(), dtype, channels_last


def niff_window(config: TrainConfig) -> int:
    """k of the k x k window a NIFF model's filters are read in: config.kernel_size, else the
    ConvMixer's default 9."""
    return config.kernel_size or 9


def niff_spatial_filters(model: torch.nn.Module, config: TrainConfig) -> tuple[list[str], list[Tensor]]:
    """Names and C x n x n spatial filters (on the CPU) of each NIFF layer on the n x n maps it sees
    on config's images."""
    layers = niff.niff_layers(model)
    *_, info = load_training_data(config)
    sides = models.input_sides(model, layers, info.in_chans, info.image_size, model_label(config), config.dataset)
    return ([name for name, _ in layers],
            [layer.spatial_filters(sides[name], sides[name]).detach().float().cpu() for name, layer in layers])


def cropped_niff_filters(model: torch.nn.Module, config: TrainConfig) -> tuple[list[str], list[Tensor], list[float]]:
    """Names, C x k x k filters and energy share outside the crop (niff.energy_outside) of each NIFF
    layer: its niff_spatial_filters cropped to k = niff_window(config) around their centre."""
    names, full = niff_spatial_filters(model, config)
    k = niff_window(config)
    return names, [niff.centre_window(f, k) for f in full], [niff.energy_outside(f, k) for f in full]


def final_filters(model: torch.nn.Module, config: TrainConfig) -> tuple[list[str], list[Tensor], list[float] | None]:
    """Names and filters of the layers whose covariances a run keeps, with the energy share each
    crop leaves out: a NIFF model's cropped_niff_filters; else the square depthwise convs' weights
    (band filters such as 1 x 9 have no k^2 x k^2 covariance to transfer) and None."""
    if niff.niff_layers(model):
        return cropped_niff_filters(model, config)
    layers = [(name, conv) for name, conv in init.depthwise_convs(model)
              if conv.kernel_size[0] == conv.kernel_size[1]]
    return [name for name, _ in layers], [conv.weight.detach().float().cpu() for _, conv in layers], None


def _final_covariances(model: torch.nn.Module, config: TrainConfig) -> tuple[list[str], list[Tensor], dict]:
    """Names and centered covariances of final_filters (none when a filter is not finite), and what
    the run's final metrics add: for a NIFF model "niff_energy_outside", one share per layer."""
    names, weights, outside = final_filters(model, config)
    if not all(torch.isfinite(w).all() for w in weights) or not all(map(math.isfinite, outside or [])):
        return names, [], {}
    extra = {} if outside is None else {"niff_energy_outside": outside}
    return names, [covariance.empirical(w, centered=True) for w in weights], extra
