"""Datasets read through torchvision from the data root: its datasets (cifar10, cifar100, svhn, mnist,
fashionmnist; files in the data root, or download=True) and image folders ("folder:<path>": an
ImageFolder, one sub-folder per class, or train/ and test/ each holding those, resized to
image_size x image_size). Each returns raw arrays; data.load_dataset normalizes them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .validation import bool_param, int_param

# ---------------------------------------------------------------------------------------------
# torchvision datasets
# ---------------------------------------------------------------------------------------------

TORCHVISION = {  # name -> (torchvision class name, folder under the data root it reads)
    "cifar10": ("CIFAR10", "cifar-10-batches-py"),
    "cifar100": ("CIFAR100", "cifar-100-python"),
    "svhn": ("SVHN", "svhn"),
    "mnist": ("MNIST", "MNIST/raw"),
    "fashionmnist": ("FashionMNIST", "FashionMNIST/raw"),
}


def torchvision_files(name: str, root: Path) -> list[Path]:
    """The files torchvision reads for a dataset (its own lists, so they stay in step)."""
    import torchvision.datasets as tvd

    cls_name, folder = TORCHVISION[name]
    cls = getattr(tvd, cls_name)
    if name in ("cifar10", "cifar100"):
        names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    elif name == "svhn":
        names = [cls.split_list[split][1] for split in ("train", "test")]
    else:
        names = [os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
    return [root / folder / f for f in names]


def torchvision_files_present(name: str, root: Path) -> bool:
    return all(f.is_file() for f in torchvision_files(name, root))


def torchvision_arrays(name: str, root: Path, download: bool):
    """(train_x uint8 N x C x H x W, train_y, test_x, test_y, classes, source) read by torchvision."""
    import torchvision.datasets as tvd

    cls_name, folder = TORCHVISION[name]
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
        files = torchvision_files(name, root)
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


def torchvision_subset(train_x, train_y, test_x, test_y, seed: int, n_train: int | None = None,
                        n_test: int | None = None):
    """Optionally a random subset (fixed by seed) of each split, to keep CPU runs short."""
    rng = np.random.default_rng(seed)

    def pick(x, y, n, what):
        if n is None:
            return x, np.asarray(y)
        n = int_param(n, what)
        if n > len(x):
            raise ValueError(f"{what} = {n} exceeds the {len(x)} images of that split")
        idx = np.sort(rng.choice(len(x), n, replace=False))
        return x[idx], np.asarray(y)[idx]

    return (*pick(train_x, train_y, n_train, "n_train"), *pick(test_x, test_y, n_test, "n_test"))



# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------

def has_class_folders(folder: Path) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    for sub in folder.iterdir():
        if sub.is_dir() and any(f.suffix.lower() in IMG_EXTENSIONS for f in sub.iterdir()):
            return True
    return False


def folder_arrays(folder: Path, seed: int, image_size: int = 32, grayscale: bool = False,
                   test_fraction: float = 0.2, max_images: int = 20000):
    """Images of an ImageFolder, resized to image_size^2. With train/ and test/ sub-folders those are
    the splits; otherwise a stratified random test_fraction of each class (fixed by seed) is test."""
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    image_size = int_param(image_size, "image_size", 4)
    max_images = int_param(max_images, "max_images")
    grayscale = bool_param(grayscale, "grayscale")
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
