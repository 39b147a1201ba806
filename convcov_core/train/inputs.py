"""A run's training data: the dataset (the last one loaded is cached), the step plan, and the images'
layout on the training device.

The data lives on the training device as one tensor; batches are drawn from it by a seeded permutation
instead of a DataLoader. The model and the data run channels_last where that pays (CPU; wide models on
CUDA): the images are then stored N x H x W x C, so that a gathered batch, permuted back to
N x C x H x W, is channels_last without a copy.
"""

from __future__ import annotations

import functools
import json

import torch

from .. import data, init
from .config import TrainConfig

Tensor = torch.Tensor

_CUDA_CHANNELS_LAST_MIN_WIDTH = 128


@functools.lru_cache(maxsize=1)
def _load_data_cached(name: str, root: str | None, params_json: str):
    params = json.loads(params_json)
    seed = params.pop("seed", 0)
    return data.load_dataset(name, root=root, seed=seed, **params)


def load_training_data(config: TrainConfig):
    """(train_x, train_y, test_x, test_y, info) for a config; the last dataset loaded is cached.

    The dataset's own seed is dataset_params["seed"] (default 0), independent of the training seed,
    so runs with different training seeds see the same data (what paired comparisons need).
    """
    params = json.dumps(config.dataset_params, sort_keys=True)
    return _load_data_cached(config.dataset, config.data_root, params)


def plan_steps(config: TrainConfig, n_train: int) -> tuple[int, int, int]:
    """(batch size, steps per epoch, total steps): full batches only, as the last partial one is dropped."""
    batch = min(config.batch_size, n_train)
    per_epoch = n_train // batch
    total = config.epochs * per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    return batch, per_epoch, total


def _channels_last(device: torch.device, model: torch.nn.Module) -> bool:
    """Whether model and data run channels_last: always on CPU (depthwise convs several times
    faster); on CUDA for depthwise convs of at least 128 channels (cuDNN's NHWC depthwise kernels
    win there and lose at 64 channels; benchmarks/train_throughput.py)."""
    if device.type == "cpu":
        return True
    widths = [conv.in_channels for _, conv in init.depthwise_convs(model)]
    return device.type == "cuda" and bool(widths) and min(widths) >= _CUDA_CHANNELS_LAST_MIN_WIDTH


def _to_device(x: Tensor, device: torch.device, channels_last: bool) -> Tensor:
    """Images N x C x H x W on device, stored N x H x W x C for channels_last: a gathered batch,
    permuted back to N x C x H x W, is then channels_last without a copy."""
    x = x.to(device=device, dtype=torch.float32)
    return x.permute(0, 2, 3, 1).contiguous() if channels_last else x.contiguous()


def _as_nchw(x: Tensor, channels_last: bool) -> Tensor:
    """The N x C x H x W view of images stored by _to_device."""
    return x.permute(0, 3, 1, 2) if channels_last else x


def gather_images(x: Tensor, idx: Tensor, channels_last: bool) -> Tensor:
    """Images idx (a 1-d index tensor) of the images x stored by _to_device, as N x C x H x W."""
    return _as_nchw(x.index_select(0, idx), channels_last)
