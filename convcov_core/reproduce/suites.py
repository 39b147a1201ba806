"""The suites: fixed sets of experiments (Suite; tiny, quick and full), how many runs and images
each takes, and SuiteRuns, everything a suite trained."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .. import data, model_pairs
from ..train import ComparisonResult, TrainConfig, load_training_data, plan_steps, resolve_device

MARGIN_POINTS = 1.0  # accuracy points: "about as well as" / "roughly match"


@dataclass
class Suite:
    """One fixed set of experiments. base: the target ConvMixer of claims 1-4 (larger kernel, deeper);
    variants: init overrides of base, the first is the reference; source: the small ConvMixer whose
    learned covariances initialize the `learned` variant (claim 3); cnn: the plain CNN of claim 5,
    analysed on cnfa_images test images."""

    name: str
    description: str
    seeds: list
    base: TrainConfig
    variants: dict
    source: TrainConfig
    cnn: TrainConfig
    cnfa_images: int
    margin: float = MARGIN_POINTS


_TORCHVISION_SETS = ("cifar10", "cifar100", "svhn", "mnist", "fashionmnist")


def _subset(dataset: str, n_train: int, n_test: int) -> dict:
    """Dataset parameters that keep about n_train / n_test images where the dataset takes them."""
    if dataset in _TORCHVISION_SETS:
        return {"n_train": n_train, "n_test": n_test}
    if dataset == "textures":
        return {"train_per_class": max(1, n_train // 10), "test_per_class": max(1, n_test // 10)}
    if dataset == "noisy-bars":
        return {"n_train": n_train, "n_test": n_test}
    return {}


def _variants(with_default_frozen: bool) -> dict:
    variants = {"default": {"init": "default"}, "gaussian": {"init": "gaussian"}}
    if with_default_frozen:
        variants["default-frozen"] = {"init": "default", "freeze_filters": True}
    variants["gaussian-frozen"] = {"init": "gaussian", "freeze_filters": True}
    variants["learned"] = {"init": "learned"}
    return variants


def _source_of(base: TrainConfig, depth: int, kernel_size: int) -> TrainConfig:
    dim = int(base.model.split("-")[1].split("/")[0])
    return base.replace(model=f"convmixer-{dim}/{depth}", kernel_size=kernel_size, init="default")


def tiny_suite(dataset: str | None = None, device: str = "auto") -> Suite:
    """Seconds on a CPU, for tests: two seeds, two steps per run on a few dozen images, one CPU
    thread (models this small gain nothing from more). Its verdicts mean nothing."""
    dataset = dataset or "noisy-bars"
    params = _subset(dataset, 64, 32)
    if dataset == "noisy-bars":
        params.update(image_size=12, bar_size=5)
    base = TrainConfig(dataset=dataset, dataset_params=params, model="convmixer-8/2", kernel_size=5,
                       patch_size=2, epochs=1, batch_size=32, max_steps=2, threads=1, device=device)
    cnn = model_pairs.cnn_config("noisy-bars", layers=2, width=4, epochs=1, batch_size=32, max_steps=2,
                        dataset_params={"n_train": 64, "n_test": 32, "image_size": 12, "bar_size": 5})
    return Suite("tiny", "Smoke test of the whole pipeline (two steps per run); its verdicts mean nothing.",
                 [0, 1], base, _variants(True), _source_of(base, 1, 3), cnn.replace(device=device), 8)


def quick_suite(dataset: str | None = None, device: str = "auto") -> Suite:
    """About 10 minutes on 2 CPU cores: ConvMixer-32/8, k = 11, on textures, 2 epochs, 4 seeds."""
    dataset = dataset or "textures"
    params = _subset(dataset, 4000, 1000) if dataset in _TORCHVISION_SETS else {}
    base = TrainConfig(dataset=dataset, dataset_params=params, model="convmixer-32/8", kernel_size=11,
                       patch_size=2, epochs=2, batch_size=128, lr=0.01, device=device)
    cnn = model_pairs.cnn_config("mnist5k", layers=3, width=32, epochs=2)
    return Suite("quick", "CPU-sized: ConvMixer-32/8 with 11 x 11 filters, 2 epochs (62 steps), 4 seeds; "
                 "source ConvMixer-32/4 with 5 x 5 filters; CNFA on a 3-layer CNN trained 2 epochs on "
                 "mnist5k.", [0, 1, 2, 3], base, _variants(False), _source_of(base, 4, 5),
                 cnn.replace(device=device), 128)


def full_suite(dataset: str | None = None, device: str = "auto") -> Suite:
    """For a GPU: ConvMixer-256/8 (k = 9) on CIFAR-10 for 10 epochs when its files are present,
    otherwise ConvMixer-64/8 (k = 11) on textures for 10 epochs; 5 seeds, default-frozen included."""
    if dataset is None:
        dataset = "cifar10" if data.available_datasets().get("cifar10") else "textures"
    if dataset == "cifar10":
        base = TrainConfig(dataset=dataset, model="convmixer-256/8", kernel_size=9, patch_size=2,
                           epochs=10, batch_size=128, lr=0.01, device=device)
        setting = "ConvMixer-256/8 with 9 x 9 filters on CIFAR-10"
    else:
        base = TrainConfig(dataset=dataset, model="convmixer-64/8", kernel_size=11, patch_size=2,
                           epochs=10, batch_size=128, lr=0.01, device=device)
        setting = f"ConvMixer-64/8 with 11 x 11 filters on {dataset}"
    cnn = model_pairs.cnn_config("mnist5k", layers=3, width=64, epochs=5)
    return Suite("full", f"GPU-sized: {setting}, 10 epochs, 5 seeds; source with 5 x 5 filters and 4 "
                 "blocks; CNFA on a 3-layer CNN (64 channels) trained 5 epochs on mnist5k.",
                 [0, 1, 2, 3, 4], base, _variants(True), _source_of(base, 4, 5),
                 cnn.replace(device=device), 256)


SUITES: dict[str, Callable[..., Suite]] = {"tiny": tiny_suite, "quick": quick_suite, "full": full_suite}


def build_suite(name: str, *, dataset: str | None = None, device: str = "auto") -> Suite:
    """The suite called `name` ("tiny", "quick", "full"); `dataset` replaces the dataset of claims 1-4."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of: {', '.join(SUITES)}")
    suite = SUITES[name](dataset, device)
    for config in (suite.base, suite.source, suite.cnn):
        config.validate()
    resolve_device(device)
    return suite


def suite_runs(suite: Suite) -> int:
    """Training runs the suite makes: per seed one source, one per variant and one CNN."""
    return len(suite.seeds) * (len(suite.variants) + 2)


def suite_images(suite: Suite) -> int:
    """Images the suite trains on (steps x batch over every run), for a server's per-job cap."""
    def images(config: TrainConfig) -> int:
        batch, _, total = plan_steps(config, len(load_training_data(config)[1]))
        return batch * total

    per_seed = images(suite.source) + images(suite.base) * len(suite.variants) + images(suite.cnn)
    return per_seed * len(suite.seeds)


@dataclass
class SuiteRuns:
    """Everything the suite trained: the target comparison (claims 1-4), the sources (claim 3) and
    the CNN's CNFA tables trained vs at init (claim 5), keyed by seed."""

    suite: Suite
    comparison: ComparisonResult
    sources: dict
    cnfa: dict
    wall_time: float
    cpu_time: float
    started: float
    load_start: list | None
    load_end: list | None = None
    notes: list = field(default_factory=list)
