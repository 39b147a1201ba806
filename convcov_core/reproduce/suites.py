"""The suites: fixed sets of experiments (Suite; tiny, quick and full), their seeds chosen by a power
rule (SeedRule), the sweeps that train them (suite_sweeps), how many runs, images and FLOPs each takes,
and SuiteRuns, everything a suite trained."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from .. import data, model_pairs, models, stats, work
from ..compare import ComparisonResult
from ..init import needing_source
from ..sweep import Sweep, Trial, trial_key
from ..train import TrainConfig, resolve_device

MARGIN_POINTS = 1.0  # accuracy points: "about as well as" / "roughly match"
MAP_INITS = ["default", "gaussian"]  # claim 6's effect map: gaussian - default in every cell


@dataclass(frozen=True)
class SeedRule:
    """The seed count by power: the fewest seeds n that resolve a paired difference of `effect`
    points at a per-seed spread of differences `spread` with 80% power (stats.seeds_needed: the
    verdict's 95% interval excludes 0), at most `most`. `measured` says where the spread comes from."""

    effect: float
    spread: float
    measured: str
    most: int

    def count(self) -> int:
        return min(self.most, stats.seeds_needed(self.effect, self.spread, most=self.most) or self.most)

    def statement(self) -> str:
        n, needed = self.count(), stats.seeds_needed(self.effect, self.spread)
        capped = "" if needed == n else f" (capped at {self.most}; the rule asks {needed or 'over 1,000'})"
        return (f"{n} seeds{capped}: enough to resolve a {self.effect:g}-point difference with 80% power at the "
                f"spread of per-seed differences {self.spread:g} points ({self.measured}); smaller true "
                "differences are likely to stay inconclusive")


@dataclass
class Suite:
    """One fixed set of experiments. base: the target ConvMixer of claims 1-4 (larger kernel, deeper);
    variants: init overrides of base, the first is the reference; source: the ConvMixer, trained per
    seed, whose learned covariances initialize the `learned` variant (claim 3), or None for the
    bundled example (trained to convergence: examples.EXAMPLE_CONFIG); cnn: the plain CNN of claim 5,
    analysed on cnfa_images test images; effect_map: the axes of claim 6's sweep over the base
    config (kernel size, model depth, epochs; gaussian vs default in every cell, the same seeds);
    seed_rule: how the seed count was chosen (None: fixed, as in the tiny suite)."""

    name: str
    description: str
    seeds: list
    base: TrainConfig
    variants: dict
    source: TrainConfig | None
    cnn: TrainConfig
    cnfa_images: int
    effect_map: dict
    margin: float = MARGIN_POINTS
    seed_rule: SeedRule | None = None

    @property
    def sourced(self) -> list[str]:
        """The variants whose init needs learned covariances: each seed's source run's (claim 3)."""
        return [name for name, overrides in self.variants.items() if needing_source([overrides["init"]])]


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


#: Claims 1-4's variants of the base config; the first is the reference. All but `learned` are the
#: grid default/gaussian x trained/frozen filters; `learned` needs each seed's source run first.
VARIANTS = {"default": {"init": "default"}, "gaussian": {"init": "gaussian"},
            "default-frozen": {"init": "default", "freeze_filters": True},
            "gaussian-frozen": {"init": "gaussian", "freeze_filters": True}, "learned": {"init": "learned"}}


def _depths(base: TrainConfig, depths: list[int]) -> list[str]:
    """The base ConvMixer's spec at each of `depths`, same width."""
    dim = models.parse_spec(base.model)["dim"]
    return [models.convmixer_spec(dim, depth) for depth in depths]


def _source_of(base: TrainConfig, depth: int, kernel_size: int) -> TrainConfig:
    return base.replace(model=_depths(base, [depth])[0], kernel_size=kernel_size, init="default")


def tiny_suite(dataset: str | None = None, device: str = "auto") -> Suite:
    """Seconds on a CPU, for tests: two seeds, two steps per run on a few dozen images, one CPU
    thread (models this small gain nothing from more), a 2 x 2 effect map. Its verdicts mean nothing."""
    dataset = dataset or "noisy-bars"
    params = _subset(dataset, 64, 32)
    if dataset == "noisy-bars":
        params.update(image_size=12, bar_size=5)
    base = TrainConfig(dataset=dataset, dataset_params=params, model="convmixer-8/2", kernel_size=5,
                       patch_size=2, epochs=1, batch_size=32, max_steps=2, threads=1, device=device)
    cnn = model_pairs.cnn_config("noisy-bars", layers=2, width=4, epochs=1, batch_size=32, max_steps=2,
                        dataset_params={"n_train": 64, "n_test": 32, "image_size": 12, "bar_size": 5})
    return Suite("tiny", "Smoke test of the whole pipeline (two steps per run); its verdicts mean nothing.",
                 [0, 1], base, dict(VARIANTS), _source_of(base, 1, 3), cnn.replace(device=device), 8,
                 {"kernel_size": [3, 5], "model": _depths(base, [1, 2])})


#: The quick suite's seeds: its report of 2026-12-02 (4 seeds) measured per-seed differences of
#: accuracy with a spread of 5.6 points (claim 1; 5.9 and 5.7 for claims 2 and 3).
QUICK_SEEDS = SeedRule(effect=6.0, spread=5.6, measured="claim 1 of the quick report of 2026-12-02, 4 seeds",
                       most=12)


def quick_suite(dataset: str | None = None, device: str = "auto") -> Suite:
    """CPU-sized: ConvMixer-32/8, k = 11, on textures, 2 epochs; seeds by QUICK_SEEDS; an effect map
    over k in {5, 11}, depth in {4, 8} and 1 or 2 epochs."""
    dataset = dataset or "textures"
    params = _subset(dataset, 4000, 1000) if dataset in _TORCHVISION_SETS else {}
    base = TrainConfig(dataset=dataset, dataset_params=params, model="convmixer-32/8", kernel_size=11,
                       patch_size=2, epochs=2, batch_size=128, lr=0.01, device=device)
    cnn = model_pairs.cnn_config("mnist5k", layers=3, width=32, epochs=2)
    seeds = list(range(QUICK_SEEDS.count()))
    return Suite("quick", f"CPU-sized: ConvMixer-32/8 with 11 x 11 filters on 16 x 16 maps, 2 epochs (62 steps), "
                 f"{len(seeds)} seeds; claim 3's source the bundled example (ConvMixer-64/8, 9 x 9 filters, 15 "
                 "epochs on mnist5k); effect map over 5 or 11 x 11 filters, 4 or 8 blocks, 1 or 2 epochs, "
                 "filters trained and frozen; CNFA on a 3-layer CNN trained 2 epochs on mnist5k.", seeds,
                 base, dict(VARIANTS), None, cnn.replace(device=device), 128,
                 {"kernel_size": [5, 11], "model": _depths(base, [4, 8]), "epochs": [1, 2]},
                 seed_rule=QUICK_SEEDS)


#: The full suite's seeds: the paper's gains are about 1 point; the nearest measured spread is the
#: Training Lab's trained-filters preset (ConvMixer-64/6, k = 15, mnist5k, 1 epoch, 5 seeds): a
#: difference of 1.0 point with 95% interval [0.2, 1.9], so a per-seed spread of 0.68 points.
FULL_SEEDS = SeedRule(effect=1.0, spread=0.68, most=20,
                      measured="the Training Lab's trained-filters preset, ConvMixer-64/6, k = 15, 5 seeds")


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
    seeds = list(range(FULL_SEEDS.count()))
    return Suite("full", f"GPU-sized: {setting}, 10 epochs, {len(seeds)} seeds; source with 5 x 5 filters and 4 "
                 "blocks; effect map over 5, 9 or 15 x 15 filters, 4 or 8 blocks, 3 or 10 epochs; CNFA on a "
                 "3-layer CNN (64 channels) trained 5 epochs on mnist5k.",
                 seeds, base, dict(VARIANTS), _source_of(base, 4, 5), cnn.replace(device=device), 256,
                 {"kernel_size": [5, 9, 15], "model": _depths(base, [4, 8]), "epochs": [3, 10]},
                 seed_rule=FULL_SEEDS)


#: The paper suite's sizes: (ConvMixer width and depth, training images per class (None: all), epochs
#: of the target, of the map, seeds (None: FULL_SEEDS), max_steps per run).
PAPER_SIZES = {"full": ((256, 8), None, 10, [3, 10], None, None), "cut": ((256, 8), 800, 4, [2, 4], 2, None),
               "tiny": ((8, 2), 8, 1, [1], 2, 2)}


def paper_suite(dataset: str | None = None, device: str = "auto", size: str = "full") -> Suite:
    """The paper's rung, for a GPU: 32 x 32 colour images (CIFAR-10 when its files are present, else
    the natural-image crops in colour), ConvMixer-256/8 with 9 x 9 filters and patch 1 (32 x 32 maps),
    10 epochs, seeds by FULL_SEEDS (a sweep trains compatible seeds as one grouped network on a GPU:
    sweep.worker.trial_batches); claim 3's source a ConvMixer-256/4 with 5 x 5 filters trained as
    long; map over 5, 9 or 15 x 15 filters and 3 or 10 epochs. size "cut": 800 images a class,
    4 epochs, 2 seeds (make gpu-check); "tiny": a ConvMixer-8/2, two steps on a few images (the CPU tests)."""
    if size not in PAPER_SIZES:
        raise ValueError(f"unknown paper suite size {size!r}; choose one of: {', '.join(PAPER_SIZES)}")
    (width, depth), per_class, epochs, map_epochs, n_seeds, max_steps = PAPER_SIZES[size]
    if dataset is None:
        dataset = "cifar10" if data.available_datasets().get("cifar10") else "textures"
    params = {"color": True} if dataset == "textures" else {}
    if per_class is not None:
        params.update(_subset(dataset, 10 * per_class, 10 * max(1, per_class // 4)))
    base = TrainConfig(dataset=dataset, dataset_params=params, model=models.convmixer_spec(width, depth),
                       kernel_size=9, patch_size=1,
                       epochs=epochs, batch_size=128, lr=0.01, max_steps=max_steps, device=device)
    cnn = model_pairs.cnn_config("mnist5k", layers=3, width=64, epochs=epochs, max_steps=max_steps)
    seeds = list(range(n_seeds or FULL_SEEDS.count()))
    images = "all" if per_class is None else f"{10 * per_class:,}"
    return Suite(f"paper{'' if size == 'full' else '-' + size}",
                 f"The paper's rung ({size}): ConvMixer-{width}/{depth} with 9 x 9 filters, patch 1 (32 x 32 maps), "
                 f"on {images} "
                 f"32 x 32 colour images of {dataset}, {epochs} epoch(s), {len(seeds)} seeds; claim 3's source "
                 f"ConvMixer-{width}/4 with 5 x 5 filters trained as long; effect map over 5, 9 or 15 x 15 filters and "
                 f"{' or '.join(map(str, map_epochs))} epochs, filters trained and frozen; CNFA on a 3-layer CNN.",
                 seeds, base, dict(VARIANTS), _source_of(base, 4, 5), cnn.replace(device=device), 256,
                 {"kernel_size": [5, 9, 15], "epochs": map_epochs}, seed_rule=None if n_seeds else FULL_SEEDS)


SUITES: dict[str, Callable[..., Suite]] = {
    "tiny": tiny_suite, "quick": quick_suite, "full": full_suite, "paper": paper_suite,
    "paper-cut": lambda dataset=None, device="auto": paper_suite(dataset, device, "cut")}


def build_suite(name: str, *, dataset: str | None = None, device: str = "auto") -> Suite:
    """The suite called `name` (a key of SUITES); `dataset` replaces the dataset of claims 1-4."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of: {', '.join(SUITES)}")
    suite = SUITES[name](dataset, device)
    for config in (suite.base, suite.source, suite.cnn):
        if config is not None:
            config.validate()
    resolve_device(device)
    return suite


@dataclass
class SuiteSweeps:
    """The sweeps that train a suite: the sources (claim 3; None for the bundled example), the target
    grid default/gaussian x trained/frozen (claims 1, 2, 4), the effect map (claim 6) and its cells
    with frozen Gaussian filters (claim 2's cases); and the learned-init trials (claim 3), once each
    seed's source covariances are known (learned_trials)."""

    sources: Sweep | None
    target: Sweep
    effect_map: Sweep
    frozen_map: Sweep

    def learned_trials(self, covariances: dict) -> list[Trial]:
        """One learned-init trial of the target per seed of {seed: the source's covariances}."""
        base = self.target.base.replace(init="learned", freeze_filters=False)
        configs = [base.replace(seed=seed, covariances=covs).validate() for seed, covs in covariances.items()]
        return [Trial(trial_key(c), c, ()) for c in configs]


def suite_sweeps(suite: Suite) -> SuiteSweeps:
    """The suite's sweeps, named reproduce-<suite>-<part>-<hash of the suite's settings>, so the same
    suite resumes under the same names and a changed one (another dataset) gets new ones (configs
    canonical: a TrainConfig field added since at its Setting.before changes no name)."""
    target_variants = [v for v in suite.variants if v not in suite.sourced]
    inits = list(dict.fromkeys(suite.variants[v]["init"] for v in target_variants))
    freezes = list(dict.fromkeys(bool(suite.variants[v].get("freeze_filters")) for v in target_variants))
    source = None if suite.source is None else suite.source.canonical_dict()
    spec = json.dumps([suite.base.canonical_dict(), source, suite.seeds, suite.effect_map, target_variants],
                      sort_keys=True, default=str)
    tag = hashlib.sha256(spec.encode()).hexdigest()[:8]

    def named(part: str) -> str:
        return f"reproduce-{suite.name}-{part}-{tag}"

    sources = None if suite.source is None else Sweep(named("sources"), suite.source, {}, ["default"],
                                                      list(suite.seeds))
    return SuiteSweeps(
        sources=sources,
        target=Sweep(named("target"), suite.base.replace(freeze_filters=False),
                     {"freeze_filters": freezes} if len(freezes) > 1 else {}, inits, list(suite.seeds)),
        effect_map=Sweep(named("map"), suite.base, dict(suite.effect_map), list(MAP_INITS), list(suite.seeds)),
        frozen_map=Sweep(named("map-frozen"), suite.base.replace(freeze_filters=True), dict(suite.effect_map),
                         ["gaussian"], list(suite.seeds)))


def _suite_trials(suite: Suite) -> list[TrainConfig]:
    """Every run the suite trains but the CNNs, each once (the map shares trials with the target);
    the learned-init runs stand in with the default init (same size)."""
    sweeps = suite_sweeps(suite)
    trials = [*(sweeps.sources.trials() if sweeps.sources else []), *sweeps.target.trials(),
              *sweeps.effect_map.trials(), *sweeps.frozen_map.trials()]
    unique = {t.key: t.config for t in trials}
    learned = [suite.base.replace(seed=seed) for seed in suite.seeds] if suite.sourced else []
    return [*unique.values(), *learned]


def suite_runs(suite: Suite) -> int:
    """Training runs the suite makes: the sweeps' distinct trials, the learned-init runs, one CNN per seed."""
    return len(_suite_trials(suite)) + len(suite.seeds)


def _over_runs(suite: Suite, per_run: Callable[[TrainConfig], float]) -> float:
    """per_run summed over the suite's runs: the sweeps' trials, the learned-init runs, one CNN per seed."""
    return sum(map(per_run, _suite_trials(suite))) + per_run(suite.cnn) * len(suite.seeds)


def suite_images(suite: Suite) -> int:
    """Images the suite trains on (steps x batch over every run), for a server's per-job cap."""
    return int(_over_runs(suite, work.images_per_run))


def suite_flops(suite: Suite) -> float:
    """Training FLOPs of the whole suite: work.run_flops summed over its runs."""
    return _over_runs(suite, work.run_flops)


@dataclass
class SuiteRuns:
    """Everything the suite trained: the target comparison (claims 1-4), the sources (claim 3; the
    bundled example for every seed when the suite has no source config) and the CNN's CNFA tables
    trained vs at init (claim 5), keyed by seed; the effect map's sweep and the trial tables of it
    and of its frozen-filter twin (claims 6 and 2; sweep.trial_table); how many runs this call trained."""

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
    effect_map: Sweep | None = None
    map_table: pd.DataFrame | None = None
    n_trained: int | None = None  # runs trained in this call (the others were found in the run store)
    frozen_table: pd.DataFrame | None = None

    def source_runs(self) -> dict:
        """{label: source run}: one per seed, or the bundled example once."""
        if self.suite.source is None:
            return {"bundled example": next(iter(self.sources.values()))} if self.sources else {}
        return {str(seed): run for seed, run in self.sources.items() if run is not None}
