"""Seed 001's Figure 5 on convcov's data: the base kernel without feature learning, ConvRFM, Deep ConvRFM
and the Feature Ansatz CNN on the same images and split, per noise level and seed.

Every model of one (noise, seed) trains on the training images of the CNN's config
(model_pairs.cnn_config: dataset seed = seed, n_train / n_test images) and is scored on its test
images. The CNN has `layers` conv blocks of `filters` channels with q x q filters (models.SmallCNN),
Deep ConvRFM the same blocks with filters drawn from N(0, M_l). The claim under test: feature learning
beats the fixed kernel on these local-signal tasks, and more so as the noise grows; judged per noise
level by stats.paired_verdict over seeds, and the trend by the paired verdict on the gains
(ConvRFM - base) at the highest and the lowest noise.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import model_pairs, stats, train
from ..paths import REPO_REPORTS
from .machines import BANDWIDTH, ConvRFM, DeepConvRFM, layer_patch_sizes

MODELS = ("base kernel", "ConvRFM", "Deep ConvRFM", "CNN")
#: The paired comparisons reported per noise level: (a, b) reads "a - b".
CONTRASTS = (("ConvRFM", "base kernel"), ("Deep ConvRFM", "base kernel"), ("CNN", "base kernel"),
             ("Deep ConvRFM", "ConvRFM"))
#: The sweep behind docs/results.md: `convcov rfm --json reports/rfm/noisy-bars.json`.
MEASURED = REPO_REPORTS / "rfm" / "noisy-bars.json"


@dataclass(frozen=True)
class Setup:
    """What every model of a comparison shares (the defaults take minutes per noise level and seed on
    2 CPU cores): data, patch size q (every layer's, the CNN's kernel size; None: 5 x 5 in the first
    layer, 3 x 3 after, the Feature Ansatz CNN's), ConvRFM iterations T, depth and filters
    per layer of Deep ConvRFM and the CNN, the Laplace bandwidth (x the median patch distance), the
    fit images the AGOP averages over, and the CNN's training epochs."""

    dataset: str = "noisy-bars"
    n_train: int = 1000
    n_test: int = 500
    patch_size: int | None = None
    iterations: int = 3
    layers: int = 2
    filters: int = 64
    bandwidth: float = BANDWIDTH
    agop_images: int | None = 400
    cnn_epochs: int = 30
    dataset_params: dict = field(default_factory=dict)

    def __post_init__(self):
        """ValueError now for an option that would fail minutes into a run."""
        if self.dataset not in model_pairs.NOISY_DATASETS:
            raise ValueError(f"the comparison runs on {', '.join(model_pairs.NOISY_DATASETS)}, not {self.dataset!r}")
        self.cnn_config(0.0, 0)
        DeepConvRFM(self.layers, self.patch_size, self.iterations, filters=self.filters, **self.machine_options(0))

    def cnn_config(self, noise: float, seed: int) -> train.TrainConfig:
        params = {**self.dataset_params, "n_train": self.n_train, "n_test": self.n_test, "seed": seed}
        return model_pairs.cnn_config(self.dataset, noise=noise, layers=self.layers, width=self.filters,
                                      kernel_size=self.patch_size, epochs=self.cnn_epochs, seed=seed,
                                      dataset_params=params)

    @property
    def patch_sizes(self) -> tuple[int, ...]:
        """Each layer's q."""
        return layer_patch_sizes(self.patch_size, self.layers)

    def machine_options(self, seed: int) -> dict:
        return dict(bandwidth=self.bandwidth, agop_images=self.agop_images, seed=seed)


Progress = Callable[[str], None]


def compare_models(setup: Setup, noise: float, seed: int, progress: Progress | None = None,
                   models=MODELS) -> list[dict]:
    """One row per model of `models` (in MODELS' order; Deep ConvRFM needs ConvRFM before it):
    {"noise", "seed", "model", "test_acc" (%), "seconds"}."""
    config = setup.cnn_config(noise, seed)
    train_x, train_y, test_x, test_y, _ = train.load_training_data(config)
    options = setup.machine_options(seed)
    fitted: dict[str, ConvRFM] = {}

    def run(model: str) -> float:
        if model == "CNN":
            return model_pairs.train_cnn(config).test_acc
        if model == "Deep ConvRFM":  # its first layer is the ConvRFM just fitted
            deep = DeepConvRFM(setup.layers, setup.patch_size, setup.iterations, filters=setup.filters, **options)
            return deep.fit(train_x, train_y, first_layer=fitted["ConvRFM"]).score(test_x, test_y)
        iterations = 0 if model == "base kernel" else setup.iterations
        fitted[model] = ConvRFM(setup.patch_sizes[0], iterations, **options).fit(train_x, train_y)
        return fitted[model].score(test_x, test_y)

    rows = []
    for model in (m for m in MODELS if m in models):
        if progress is not None:
            progress(f"noise {noise:g}, seed {seed}: {model}")
        started = time.perf_counter()
        acc = run(model)
        rows.append({"noise": noise, "seed": seed, "model": model, "test_acc": acc,
                     "seconds": time.perf_counter() - started})
    return rows


@dataclass
class NoiseSweep:
    """compare_models over noise levels and seeds: the tidy rows and their verdicts."""

    setup: Setup
    noises: list[float]
    seeds: list[int]
    rows: list[dict]

    def accuracies(self, model: str, noise: float) -> list[float | None]:
        """Test accuracy per seed (seeds order; None where it is missing)."""
        found = {r["seed"]: r["test_acc"] for r in self.rows if r["model"] == model and r["noise"] == noise}
        return [found.get(seed) for seed in self.seeds]

    def summary(self) -> list[dict]:
        """Per noise level and model: mean test accuracy and its 95% t interval over seeds."""
        out = []
        for noise in self.noises:
            for model in MODELS:
                iv = stats.mean_interval(self.accuracies(model, noise))
                out.append({"noise": noise, "model": model, "mean": iv.mean, "low": iv.low, "high": iv.high,
                            "seeds": iv.n})
        return out

    def verdicts(self) -> list[dict]:
        """Per noise level and contrast (a, b): the paired verdict on a - b over seeds."""
        return [{"noise": noise, "a": a, "b": b,
                 "verdict": stats.paired_verdict(self.accuracies(a, noise), self.accuracies(b, noise))}
                for noise in self.noises for a, b in CONTRASTS]

    def trend(self, model: str = "ConvRFM") -> stats.PairedVerdict:
        """Paired verdict on the gain (model - base kernel) at the highest noise vs at the lowest."""
        def gains(noise):
            return [None if m is None or b is None else m - b
                    for m, b in zip(self.accuracies(model, noise), self.accuracies("base kernel", noise))]

        return stats.paired_verdict(gains(max(self.noises)), gains(min(self.noises)))

    def to_dict(self) -> dict:
        """JSON-safe: the setup, every row, the summary and the verdicts (mean, interval, winner)."""
        def verdict(v: stats.PairedVerdict) -> dict:
            return {"mean": v.mean, "low": v.low, "high": v.high, "winner": v.winner, "seeds": v.n}

        return {"setup": dataclasses.asdict(self.setup), "noises": self.noises, "seeds": self.seeds,
                "rows": self.rows, "summary": self.summary(),
                "verdicts": [{"noise": v["noise"], "a": v["a"], "b": v["b"], **verdict(v["verdict"])}
                             for v in self.verdicts()],
                "trend": {model: verdict(self.trend(model)) for model in ("ConvRFM", "Deep ConvRFM")}}


def measured_sweep(path: Path | None = None) -> dict | None:
    """The document `convcov rfm --json` wrote (NoiseSweep.to_dict) at `path` (default MEASURED), or None
    when the file is missing."""
    path = Path(path or MEASURED)
    return json.loads(path.read_text()) if path.is_file() else None


def noise_sweep(setup: Setup, noises, seeds, progress: Progress | None = None) -> NoiseSweep:
    """compare_models at every noise level and seed (seeds inner, so every level gets all seeds)."""
    noises, seeds = [float(v) for v in noises], [int(s) for s in seeds]
    if not noises or not seeds:
        raise ValueError("a noise sweep needs at least one noise level and one seed")
    rows = [row for noise in noises for seed in seeds for row in compare_models(setup, noise, seed, progress)]
    return NoiseSweep(setup, noises, seeds, rows)


#: Training images of the two probes on which estimate_seconds times the kernel models.
PROBE_IMAGES = (100, 200)


def _kernel_seconds(setup: Setup, n_train: int, noise: float, seed: int) -> float:
    """Seconds the kernel models (base kernel, ConvRFM, Deep ConvRFM) take on a copy of `setup` whose
    training, test and AGOP images are cut by the share n_train / setup.n_train."""
    share = n_train / setup.n_train
    probe = dataclasses.replace(setup, n_train=n_train, n_test=max(10, round(setup.n_test * share)),
                                agop_images=None if setup.agop_images is None
                                else max(1, round(setup.agop_images * share)))
    return sum(row["seconds"] for row in compare_models(probe, noise, seed, models=MODELS[:3]))


def estimate_seconds(setup: Setup, noises, seeds, probes: tuple[int, int] = PROBE_IMAGES) -> float:
    """Seconds noise_sweep(setup, noises, seeds) should take on this machine, per noise level and
    seed times their number: the kernel models timed on two probes at the first noise level and seed
    (`probes` training images, the test and AGOP images cut by the same share) and extrapolated as
    a + b n² (their kernels and AGOPs pair images with training images; a: what does not grow so),
    at least linearly from the larger probe; plus the CNN's train.estimate_time (a few timed steps).
    With no more training images than the larger probe, the kernel models are timed at full size."""
    noises, seeds = list(noises), list(seeds)
    small, large = probes
    if setup.n_train <= large:
        kernels = _kernel_seconds(setup, setup.n_train, noises[0], seeds[0])
    else:
        t_small = _kernel_seconds(setup, small, noises[0], seeds[0])
        t_large = _kernel_seconds(setup, large, noises[0], seeds[0])
        b = max(0.0, (t_large - t_small) / (large ** 2 - small ** 2))
        kernels = max(t_large - b * large ** 2 + b * setup.n_train ** 2, t_large * setup.n_train / large)
    cnn = train.estimate_time(setup.cnn_config(noises[0], seeds[0]))
    return (kernels + cnn) * len(noises) * len(seeds)
