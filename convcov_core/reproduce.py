"""Reproduce the papers' claims: fixed small experiments over seeds, verdicts by stated rules, a report.

Five claims (seed 000, Trockman et al., ICLR 2023; seed 001, the Convolutional Neural Feature Ansatz):

1. Gaussian closed-form covariance init beats PyTorch's default init (ConvMixer, large kernels,
   short training).
2. With depthwise filters frozen at init, the Gaussian init does about as well as (or better than)
   the default init with trained filters.
3. Covariances learned by a small ConvMixer (small kernel, shallow) transfer: used to initialize a
   larger one (larger kernel, deeper) they beat the default init and roughly match the closed form.
4. Learned covariances spread out with depth: the fitted sigma grows from the first to the last layer.
5. CNFA (seed 001): in every conv layer the Pearson r between the patch-AGOP and W^T W is high after
   training (> 0.9), higher than at initialization, and higher than the r between the trained and
   the initial W^T W (the seed's control: the weights moved far from their init, so the agreement
   was learned, not inherited).

One set of trainings serves claims 1-4: per seed, a small source ConvMixer is trained (claim 3) and
the target ConvMixer is trained with every init variant (default, gaussian, gaussian-frozen,
learned from that seed's source; default-frozen in the full suite); claim 4 reads the covariances
of the default-init runs, whose filters owe their structure to training alone, and counts a
fitted sigma only where the closed form fits with r >= FIT_R_MIN. Claim 5 trains a small plain CNN
per seed (feature_ansatz.train_cnn) and compares its CNFA check trained vs at init. Accuracies are
test accuracies with settled BatchNorm statistics (train.py).

Verdicts: RULES (paired t intervals from stats.mean_interval; a claim is supported when all of its
parts are, refuted when any part is after Holm's correction, inconclusive otherwise).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from . import __version__, covariance, data, init, stats
from . import feature_ansatz as fa
from .comparison_table import Table, comparison_table
from .json_safe import json_safe
from .paths import convcov_home
from .text import duration
from .train import (
    ComparisonResult,
    ProgressEvent,
    RunResult,
    TrainConfig,
    compare,
    load_training_data,
    plan_steps,
    resolve_device,
    summarize,
    train,
)

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
MARGIN_POINTS = 1.0  # accuracy points: "about as well as" / "roughly match"
CNFA_THRESHOLD = 0.9
FIT_R_MIN = 0.5  # a fitted sigma whose closed form correlates less than this is not a measurement
REPORT_JSON, REPORT_MD = "report.json", "report.md"
REPORT_FORMAT = 2
#: The committed reports of a source checkout; the page also looks in $CONVCOV_HOME/reports.
REPO_REPORTS = Path(__file__).resolve().parents[1] / "reports"

RULES = {
    "interval": ("Per seed, d = A - B (paired: same seed, same data order). Every test reads the 95% "
                 "Student-t interval of the mean of d over the n seeds, mean ± t(0.975, n - 1) SE "
                 "(stats.mean_interval): the paired t-test, the same rule the Training Lab and "
                 "`compare` use (stats.paired_verdict). Fewer than two seeds: inconclusive."),
    "superiority": ("A beats B: supported when the interval lies above 0; refuted when it lies below 0 "
                    "(B clearly better)."),
    "non-inferiority": ("A does about as well as B or better, within a margin m: supported when the "
                        "interval lies above -m; refuted when it lies below -m."),
    "equivalence": ("A roughly matches B, within a margin m: supported when the interval lies inside "
                    "(-m, m); refuted when it lies entirely outside."),
    "above": ("A value (per layer, over seeds) exceeds a threshold t: supported when its interval lies "
              "above t; refuted when it lies below t."),
    "combined": ("A claim is supported when every part is supported: an intersection-union test, no "
                 "more often wrong than its parts, so it needs no correction. It is refuted (not "
                 "supported) when any part is refuted after Holm's correction over the claim's parts "
                 "(one-sided p-values at family-wise level 0.025). Otherwise it is inconclusive."),
}


# ---------------------------------------------------------------------------------------------
# Verdict rules (stats.mean_interval; see RULES)
# ---------------------------------------------------------------------------------------------


def _part(test: str, statement: str, values: dict, support: bool, p_refute: float | None,
          **extra) -> dict:
    """One test of a claim: its values per seed, their interval, whether it supports the claim,
    and the one-sided p-value of the opposite (settle() turns that into a refutation)."""
    iv = stats.mean_interval(values.values())
    return {"test": test, "statement": statement, "per_seed": {str(k): v for k, v in values.items()},
            "n": iv.n, "mean": iv.mean, "std": iv.std, "se": iv.se, "low": iv.low, "high": iv.high,
            "supports": bool(support and iv.low is not None), "p_refute": p_refute,
            "verdict": INCONCLUSIVE, **extra}


def superiority(diffs: dict, a: str, b: str, statement: str | None = None) -> dict:
    """Part "A beats B" from per-seed differences A - B (see RULES["superiority"])."""
    iv = stats.mean_interval(diffs.values())
    return _part("superiority", statement or f"{a} beats {b}", diffs, iv.low is not None and iv.low > 0,
                 iv.p_below(0.0), a=a, b=b, margin=0.0,
                 favour_a=sum(d > 0 for d in diffs.values() if d is not None))


def non_inferiority(diffs: dict, a: str, b: str, margin: float) -> dict:
    """Part "A does about as well as B or better" within `margin` (see RULES["non-inferiority"])."""
    iv = stats.mean_interval(diffs.values())
    return _part("non-inferiority", f"{a} does about as well as {b} or better (margin {margin:g})", diffs,
                 iv.low is not None and iv.low > -margin, iv.p_below(-margin), a=a, b=b, margin=margin,
                 favour_a=sum(d > 0 for d in diffs.values() if d is not None))


def equivalence(diffs: dict, a: str, b: str, margin: float) -> dict:
    """Part "A roughly matches B" within `margin` (see RULES["equivalence"])."""
    iv = stats.mean_interval(diffs.values())
    inside = iv.low is not None and -margin < iv.low and iv.high < margin
    p_out = None if iv.se is None else min(1.0, 2 * min(iv.p_above(margin), iv.p_below(-margin)))
    return _part("equivalence", f"{a} roughly matches {b} (margin {margin:g})", diffs, inside, p_out,
                 a=a, b=b, margin=margin, favour_a=sum(d > 0 for d in diffs.values() if d is not None))


def above(values: dict, threshold: float, statement: str) -> dict:
    """Part "the value exceeds threshold" from its values per seed (see RULES["above"])."""
    iv = stats.mean_interval(values.values())
    return _part("above", statement, values, iv.low is not None and iv.low > threshold,
                 iv.p_below(threshold), threshold=threshold)


def settle(parts: list[dict]) -> str:
    """Set each part's verdict and return the claim's (see RULES["combined"])."""
    refuted = stats.holm([p["p_refute"] for p in parts])
    for part, out in zip(parts, refuted):
        part["verdict"] = NOT_SUPPORTED if out else SUPPORTED if part["supports"] else INCONCLUSIVE
    if not parts:
        return INCONCLUSIVE
    if any(refuted):
        return NOT_SUPPORTED
    return SUPPORTED if all(p["supports"] for p in parts) else INCONCLUSIVE


# ---------------------------------------------------------------------------------------------
# Suites
# ---------------------------------------------------------------------------------------------


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
    cnn = fa.cnn_config("noisy-bars", layers=2, width=4, epochs=1, batch_size=32, max_steps=2,
                        dataset_params={"n_train": 64, "n_test": 32, "image_size": 12, "bar_size": 5})
    return Suite("tiny", "Smoke test of the whole pipeline (two steps per run); its verdicts mean nothing.",
                 [0, 1], base, _variants(True), _source_of(base, 1, 3), cnn.replace(device=device), 8)


def quick_suite(dataset: str | None = None, device: str = "auto") -> Suite:
    """About 10 minutes on 2 CPU cores: ConvMixer-32/8, k = 11, on textures, 2 epochs, 4 seeds."""
    dataset = dataset or "textures"
    params = _subset(dataset, 4000, 1000) if dataset in _TORCHVISION_SETS else {}
    base = TrainConfig(dataset=dataset, dataset_params=params, model="convmixer-32/8", kernel_size=11,
                       patch_size=2, epochs=2, batch_size=128, lr=0.01, device=device)
    cnn = fa.cnn_config("mnist5k", layers=3, width=32, epochs=2)
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
    cnn = fa.cnn_config("mnist5k", layers=3, width=64, epochs=5)
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


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


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


def _load_average() -> list | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


class _Relay:
    """Passes progress events on with the suite-wide run index, run count and a stage label;
    remembers a stop request."""

    def __init__(self, callback, n_runs: int):
        self.callback, self.n_runs, self.offset, self.label, self.stopped = callback, n_runs, 0, "", False

    def at(self, offset: int, label: str) -> "_Relay":
        self.offset, self.label = offset, label
        return self

    def __call__(self, event: ProgressEvent):
        if self.callback is None:
            return None
        variant = f"{self.label} {event.variant}" if event.variant else self.label
        answer = self.callback(dataclasses.replace(event, run_index=self.offset + event.run_index,
                                                   n_runs=self.n_runs, variant=variant))
        if answer is True or answer == "stop":
            self.stopped = True
        return answer


def run_suite(suite: Suite, callback: Callable[[ProgressEvent], object] | None = None) -> SuiteRuns | None:
    """Train everything the suite needs; None when the callback asked to stop (answering True/"stop")."""
    started, clock, cpu = time.time(), time.perf_counter(), time.process_time()
    load_start = _load_average()
    relay = _Relay(callback, suite_runs(suite))
    variants, first = suite.variants, next(iter(suite.variants))
    runs = {name: [] for name in variants}
    sources, cnfa, notes = {}, {}, []
    index = 0
    for seed in suite.seeds:
        source = train(suite.source.replace(seed=seed), relay.at(index, "claim 3 source"))
        index += 1
        if relay.stopped or source.status == "cancelled":
            return None
        sources[seed] = source
        here = dict(variants)
        if source.status != "ok" or not source.covariances:
            here.pop("learned", None)
            notes.append(f"seed {seed}: the source run ended {source.status} ({source.message}); "
                         "no learned-init run for this seed")
        base = suite.base.replace(covariances=source.covariances or None)
        cmp = compare(base, here, [seed], relay.at(index, "claims 1-4"))
        index += len(variants)
        if relay.stopped or cmp.status == "cancelled":
            return None
        for name, done in cmp.runs.items():
            runs[name] += done
    for seed in suite.seeds:
        config = suite.cnn.replace(seed=seed)
        pair = fa.train_cnn(config, relay.at(index, "claim 5 CNN"))
        index += 1
        if pair is None or relay.stopped:
            return None
        table = fa.compare_cnfa(pair, fa.analysis_images(config, suite.cnfa_images)).table()
        cnfa[seed] = {"label": pair.label, "test_acc": pair.test_acc,
                      "layers": [{"layer": r["layer"], "kind": r["kind"], "r_trained": r["r trained"],
                                  "r_init": r["r at init"], "r_control": r["r(CNFM init, CNFM trained)"]}
                                 for r in table]}
    references = {name: (None if name == first else first) for name in variants}
    rows, verdicts = summarize(variants, suite.seeds, runs, references)
    base = suite.base.replace(covariances=None)
    comparison = ComparisonResult(base_config=base, variants=dict(variants), seeds=list(suite.seeds),
                                  runs=runs, rows=rows, verdicts=verdicts,
                                  wall_time=time.perf_counter() - clock, references=references)
    return SuiteRuns(suite, comparison, sources, cnfa, time.perf_counter() - clock,
                     time.process_time() - cpu, started, load_start, _load_average(), notes)


# ---------------------------------------------------------------------------------------------
# Claims: numbers, verdicts, figure specs
# ---------------------------------------------------------------------------------------------


def _acc(comparison: ComparisonResult, variant: str) -> dict:
    """{seed: final test accuracy or None} of a variant (empty when the suite did not run it)."""
    for row in comparison.rows:
        if row["variant"] == variant:
            return dict(row["per_seed"])
    return {}


def _diffs(a: dict, b: dict) -> dict:
    return {s: a[s] - b[s] for s in a if a.get(s) is not None and b.get(s) is not None}


def _pm(stats: dict, unit: str = " points", spec: str = "+.2f") -> str:
    if stats["mean"] is None:
        return "no finished pairs"
    se = f" ± {stats['se']:.2f}" if stats["se"] is not None else ""
    return f"{stats['mean']:{spec}}{se}{unit} (mean ± SE, {stats['n']} seeds)"


def _paired_spec(title: str, comparison: ComparisonResult, categories: list[str]) -> dict:
    present = [c for c in categories if c in comparison.variants]
    return {"kind": "paired", "title": title, "ylabel": "test accuracy (%)", "categories": present,
            "seeds": list(comparison.seeds),
            "values": {c: [_acc(comparison, c).get(s) for s in comparison.seeds] for c in present}}


def _variant_table(comparison: ComparisonResult, names: list[str]) -> list[dict]:
    rows = []
    for row in comparison.rows:
        if row["variant"] in names:
            rows.append({"variant": row["variant"], "n": row["n"], "mean": row["mean"], "std": row["std"],
                         "per_seed": {str(s): v for s, v in row["per_seed"].items()}})
    return rows


def _training(config: TrainConfig, *, dataset: bool = True) -> str:
    params = ", ".join(f"{k}={v}" for k, v in config.dataset_params.items())
    steps = f", at most {config.max_steps} steps" if config.max_steps else ""
    where = f"on {config.dataset}{f' ({params})' if params else ''}, " if dataset else ""
    return (f"{where}{config.epochs} epoch(s){steps}, batch {config.batch_size}, AdamW lr {config.lr:g} "
            "one-cycle")


def _describe(config: TrainConfig) -> str:
    return (f"{config.model}, {config.kernel_size} x {config.kernel_size} filters, patch {config.patch_size}, "
            f"{_training(config)}")


def _layer_table(layers: list[str], per_seed: dict, fixed: dict) -> dict:
    """Markdown-ready table: one row per layer, the mean ± SE over seeds of each per_seed column
    ({name: {seed: values per layer}}) and the value of each fixed column ({name: values per layer})."""
    rows = []
    for j, layer in enumerate(layers):
        row = [layer]
        for by_seed in per_seed.values():
            iv = stats.mean_interval([v[j] for v in by_seed.values() if j < len(v)])
            row.append(f"{_f(iv.mean, '.3f')} ± {_f(iv.se, '.3f')}")
        row += [_f(values[j], ".3f") if j < len(values) else "-" for values in fixed.values()]
        rows.append(row)
    return {"columns": ["layer", *per_seed, *fixed], "rows": rows}


def _claim(number: int, title: str, statement: str, source: str, setup: str, parts: list[dict],
           our_number: str, figure: dict, numbers: dict) -> dict:
    return {"id": number, "title": title, "claim": statement, "source": source, "setup": setup,
            "parts": parts, "verdict": settle(parts), "our_number": our_number, "figure": figure,
            "numbers": numbers}


def claim_gaussian_beats_default(runs: SuiteRuns) -> dict:
    c = runs.comparison
    part = superiority(_diffs(_acc(c, "gaussian"), _acc(c, "default")), "gaussian", "default")
    sigma = init.default_sigmas(c.base_config.kernel_size)
    setup = (f"{_describe(c.base_config)}; both inits trained; Gaussian sigma {sigma[0]:g} -> {sigma[1]:.3g} "
             f"over depth; seeds {', '.join(map(str, c.seeds))}.")
    return _claim(1, "Gaussian init beats the default init",
                  "Gaussian closed-form covariance init beats PyTorch's default init for ConvMixer with "
                  "large kernels in short training (paper: often over 1 point on CIFAR-10).",
                  "seed 000 (Trockman, Willmott & Kolter, ICLR 2023)", setup, [part],
                  f"gaussian - default = {_pm(part)}; {part['favour_a']}/{part['n']} seeds favour gaussian",
                  _paired_spec("Claim 1: trained, Gaussian vs default init", c, ["default", "gaussian"]),
                  {"variants": _variant_table(c, ["default", "gaussian"])})


def claim_frozen_gaussian(runs: SuiteRuns, margin: float) -> dict:
    c = runs.comparison
    part = non_inferiority(_diffs(_acc(c, "gaussian-frozen"), _acc(c, "default")), "gaussian-frozen",
                           "default", margin)
    extra = ""
    if "default-frozen" in c.variants:
        control = superiority(_diffs(_acc(c, "default-frozen"), _acc(c, "default")), "default-frozen", "default")
        extra = f"; control default-frozen - default = {_pm(control)}"
    setup = (f"{_describe(c.base_config)}; gaussian-frozen: Gaussian init, depthwise filters never "
             f"trained; default: default init, filters trained; margin {margin:g} accuracy point(s).")
    return _claim(2, "Frozen Gaussian filters match trained default filters",
                  "With the depthwise filters frozen at initialization, the covariance init does about as "
                  "well as, or better than, the default init with trained filters (frozen Gaussian vs "
                  "TRAINED default, the paper's comparison; frozen vs frozen is a different question).",
                  "seed 000 (Trockman, Willmott & Kolter, ICLR 2023)", setup, [part],
                  f"gaussian-frozen - default = {_pm(part)}; {part['favour_a']}/{part['n']} seeds favour "
                  f"gaussian-frozen{extra}",
                  _paired_spec("Claim 2: frozen Gaussian filters vs trained default filters", c,
                               ["default", "gaussian-frozen", "default-frozen"]),
                  {"variants": _variant_table(c, ["default", "gaussian-frozen", "default-frozen"])})


def claim_transfer(runs: SuiteRuns, margin: float) -> dict:
    c = runs.comparison
    learned = _acc(c, "learned")
    beats = superiority(_diffs(learned, _acc(c, "default")), "learned", "default")
    matches = equivalence(_diffs(learned, _acc(c, "gaussian")), "learned", "gaussian", margin)
    s = runs.suite.source
    source_acc = {str(seed): r.final.get("test_acc") for seed, r in runs.sources.items()}
    setup = (f"Source per seed: {_describe(s)}, default init. Its per-layer learned covariances are "
             f"resized to {c.base_config.kernel_size} x {c.base_config.kernel_size} and interpolated over "
             f"depth (covariance.transfer) to initialize the target: {_describe(c.base_config)}; "
             f"margin {margin:g} accuracy point(s).")
    return _claim(3, "Learned covariances transfer to a larger model",
                  "Covariances learned by a small ConvMixer (small kernel, shallow) transfer: used to "
                  "initialize a larger one (larger kernel, deeper), they beat default init and roughly "
                  "match the closed form.",
                  "seed 000 (Trockman, Willmott & Kolter, ICLR 2023)", setup, [beats, matches],
                  f"learned - default = {_pm(beats)}; learned - gaussian = {_pm(matches)}",
                  _paired_spec("Claim 3: init from a small model's learned covariances", c,
                               ["default", "gaussian", "learned"]),
                  {"variants": _variant_table(c, ["default", "gaussian", "learned"]),
                   "source_test_acc": source_acc,
                   "table": {"columns": ["source run", *source_acc], "rows": [
                       ["test accuracy % per seed", *[_f(v, ".1f") for v in source_acc.values()]]]}})


def claim_sigma_grows(runs: SuiteRuns) -> dict:
    c = runs.comparison
    per_seed, fits_r, names = {}, {}, []
    for run in c.runs.get("default", []):
        if run.status != "ok" or not run.covariances:
            continue
        fits = [covariance.fit_sigma(S) for S in run.covariances]
        per_seed[run.config.seed] = [f[0] for f in fits]
        fits_r[run.config.seed] = [f[1] for f in fits]
        names = run.layer_names
    measured = {s: v[-1] - v[0] for s, v in per_seed.items()
                if len(v) >= 2 and min(fits_r[s][0], fits_r[s][-1]) >= FIT_R_MIN}
    part = superiority(measured, "last layer", "first layer",
                       f"fitted sigma grows from the first to the last layer (seeds whose first and last "
                       f"fits have r >= {FIT_R_MIN:g})")
    k, depth = c.base_config.kernel_size, len(names)
    width = c.base_config.model.split("-")[1].split("/")[0]
    closed = covariance.depth_schedule(*init.default_sigmas(k), depth) if depth else []
    first = stats.mean_interval([v[0] for v in per_seed.values()])
    last = stats.mean_interval([v[-1] for v in per_seed.values()])
    setup = (f"Centered covariance of each depthwise layer's {width} filters after training with the "
             f"default init ({_describe(c.base_config)}): {width} filters estimate a {k * k} x {k * k} "
             f"covariance of rank at most {int(width) - 1}. The closed-form sigma that best fits it "
             "(covariance.fit_sigma, both scaled to unit mean diagonal) with the fit's Pearson r; a fit "
             f"with r < {FIT_R_MIN:g} is not counted as a measurement of sigma. Difference last - first "
             "layer per seed.")
    fit_first = stats.mean_interval([v[0] for v in fits_r.values()]).mean
    fit_last = stats.mean_interval([v[-1] for v in fits_r.values()]).mean
    figure = {"kind": "layers", "title": "Claim 4: fitted sigma of learned covariances by depth",
              "xlabel": "depthwise layer", "ylabel": "fitted sigma (pixels)",
              "layers": [str(i + 1) for i in range(depth)],
              "groups": [{"name": "trained from default init", "per_seed": {str(s): v for s, v in per_seed.items()}},
                         {"name": "closed-form schedule (Gaussian init)", "per_seed": {"": closed}, "dash": True}],
              "hline": None}
    return _claim(4, "Learned covariances spread out with depth",
                  "Learned covariances spread out with depth: the fitted sigma grows from the first to the "
                  "last layer.", "seed 000 (Trockman, Willmott & Kolter, ICLR 2023)", setup, [part],
                  f"sigma last - first = {_pm(part, ' px')} over the {len(measured)} of {len(per_seed)} seeds "
                  f"with fits of r >= {FIT_R_MIN:g}; first layer {_f(first.mean)} px (fit r {_f(fit_first)}), "
                  f"last {_f(last.mean)} px (fit r {_f(fit_last)})",
                  figure, {"layers": names, "sigma": {str(s): v for s, v in per_seed.items()},
                           "fit_r": {str(s): v for s, v in fits_r.items()}, "closed_form": closed,
                           "fit_r_min": FIT_R_MIN,
                           "table": _layer_table(names, {"fitted sigma (mean ± SE)": per_seed,
                                                         "fit r (mean ± SE)": fits_r},
                                                 {"closed-form sigma of the Gaussian init": closed})})


def claim_cnfa(runs: SuiteRuns) -> dict:
    cnfa = runs.cnfa
    layers = [row["layer"] for row in next(iter(cnfa.values()))["layers"]] if cnfa else []

    def per_seed(key: str) -> dict:
        return {s: [row[key] for row in v["layers"]] for s, v in cnfa.items()}

    trained, initial, control = per_seed("r_trained"), per_seed("r_init"), per_seed("r_control")
    parts = []
    for j, name in enumerate(layers):
        parts += [
            above({s: trained[s][j] for s in cnfa}, CNFA_THRESHOLD, f"{name}: r trained > {CNFA_THRESHOLD:g}"),
            superiority({s: trained[s][j] - initial[s][j] for s in cnfa}, "trained", "at init",
                        f"{name}: r trained > r at init"),
            superiority({s: trained[s][j] - control[s][j] for s in cnfa}, "r(AGOP, CNFM)",
                        "r(CNFM init, CNFM)", f"{name}: r trained > r(CNFM at init, CNFM trained)"),
        ]
    label = next(iter(cnfa.values()))["label"] if cnfa else runs.suite.cnn.model
    setup = (f"{label}, {_training(runs.suite.cnn, dataset=False)}. Per conv layer, Pearson r between the "
             f"patch-AGOP of all outputs on {runs.suite.cnfa_images} test images and W^T W (the CNFM), for "
             "the trained model and the same model at its initialization; and, as seed 001's control that "
             "the weights moved far from their init, r between the CNFM at init and after training. Three "
             "tests per layer, every layer.")
    passed = sum(p["verdict"] == SUPPORTED for p in parts)
    figure = {"kind": "layers", "title": "Claim 5: r(patch-AGOP, WᵀW) per layer, trained vs at init",
              "xlabel": "conv layer", "ylabel": "Pearson r", "layers": layers,
              "groups": [{"name": "trained", "per_seed": {str(s): v for s, v in trained.items()}},
                         {"name": "at init", "per_seed": {str(s): v for s, v in initial.items()}},
                         {"name": "control: r(CNFM init, CNFM trained)",
                          "per_seed": {str(s): v for s, v in control.items()}, "dash": True}],
              "hline": {"y": CNFA_THRESHOLD, "label": f"r = {CNFA_THRESHOLD:g}"}}
    claim = _claim(5, "CNFA: AGOP and WᵀW agree after training, and training made them agree",
                   "In every conv layer, Pearson r between patch-AGOP and WᵀW is high after training "
                   f"(> {CNFA_THRESHOLD:g}), lower at initialization, and higher than the r between the "
                   "trained and the initial WᵀW (the weights moved far from their init).",
                   "seed 001 (Convolutional Neural Feature Ansatz)", setup, parts, "", figure,
                   {"layers": layers, "r_trained": {str(s): v for s, v in trained.items()},
                    "r_init": {str(s): v for s, v in initial.items()},
                    "r_control": {str(s): v for s, v in control.items()},
                    "test_acc": {str(s): v["test_acc"] for s, v in cnfa.items()},
                    "table": _layer_table(layers, {"r trained (mean ± SE)": trained,
                                                   "r at init (mean ± SE)": initial,
                                                   "r(CNFM init, CNFM trained) (mean ± SE)": control}, {})})
    means = [stats.mean_interval([trained[s][j] for s in cnfa]).mean for j in range(len(layers))]
    inits = [stats.mean_interval([initial[s][j] for s in cnfa]).mean for j in range(len(layers))]
    claim["our_number"] = ("r trained / at init per layer: "
                           + ", ".join(f"{_f(t, '.2f')} / {_f(i, '.2f')}" for t, i in zip(means, inits))
                           + f"; {passed} of {len(parts)} tests supported")
    return claim


def build_claims(runs: SuiteRuns) -> list[dict]:
    """The five claims with their parts, verdicts, numbers and figure specs."""
    m = runs.suite.margin
    return [claim_gaussian_beats_default(runs), claim_frozen_gaussian(runs, m), claim_transfer(runs, m),
            claim_sigma_grows(runs), claim_cnfa(runs)]


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _device_label(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"GPU ({torch.cuda.get_device_name(torch.device(device))})"
    if device.startswith("mps"):
        return "Apple MPS"
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def _run_rows(runs: SuiteRuns) -> list[dict]:
    rows = []

    def add(stage: str, variant: str, run: RunResult):
        rows.append({"stage": stage, "variant": variant, "seed": run.config.seed, "status": run.status,
                     "test_acc": run.final.get("test_acc"), "test_acc_raw": run.final.get("test_acc_raw"),
                     "wall_time": run.wall_time, "device": run.device})

    for seed, run in runs.sources.items():
        add("claim 3 source", "default", run)
    for name, done in runs.comparison.runs.items():
        for run in done:
            add("claims 1-4", name, run)
    for seed, v in runs.cnfa.items():
        rows.append({"stage": "claim 5 CNN", "variant": "trained", "seed": seed, "status": "ok",
                     "test_acc": v["test_acc"], "test_acc_raw": None, "wall_time": None, "device": None})
    return rows


def make_report(runs: SuiteRuns) -> dict:
    """The report as a JSON-safe dict: when, where and how long; settings; rules; claims; runs."""
    suite = runs.suite
    device = next((r.device for done in runs.comparison.runs.values() for r in done), "cpu")
    settings = {"seeds": suite.seeds, "target": suite.base.to_dict(), "variants": suite.variants,
                "source": suite.source.to_dict(), "cnn": suite.cnn.to_dict(), "cnfa_images": suite.cnfa_images,
                "margin_points": suite.margin, "cnfa_threshold": CNFA_THRESHOLD, "fit_r_min": FIT_R_MIN}
    return json_safe({
        "format": REPORT_FORMAT, "suite": suite.name, "description": suite.description,
        "created": datetime.fromtimestamp(runs.started, timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": runs.wall_time, "cpu_time_s": runs.cpu_time, "torch_threads": torch.get_num_threads(),
        "device": device, "device_label": _device_label(device),
        "cpu_count": os.cpu_count(), "load_average": {"start": runs.load_start, "end": runs.load_end},
        "versions": {"convcov": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "rules": RULES, "settings": settings, "notes": runs.notes, "claims": build_claims(runs),
        "runs": _run_rows(runs), "comparison_verdicts": runs.comparison.verdicts,
        "comparison_table": dataclasses.asdict(comparison_table(runs.comparison)),
    })


def provenance(report: dict) -> str:
    """One paragraph: when, on what, how long, and how busy the machine was."""
    when = report["created"].replace("T", " ").replace("+00:00", " UTC")
    cpu = report.get("cpu_time_s")
    cpu = f"; the process used {duration(cpu)} of CPU time" if cpu is not None else ""
    text = (f"Produced {when} on {report['device_label']} in {duration(report['wall_time_s'])} (wall time "
            f"of the experiments{cpu}), convcov {report['versions']['convcov']}, torch "
            f"{report['versions']['torch']}.")
    load = report.get("load_average") or {}
    values = [v[0] for v in (load.get("start"), load.get("end")) if v]
    if values and report.get("cpu_count"):
        text += (f" The 1-minute load average was {values[0]:g} at the start and {values[-1]:g} at the end "
                 f"on {report['cpu_count']} CPUs")
        if max(values) > report["cpu_count"]:
            text += ": other processes shared the machine, so this wall time is an upper bound"
        text += "."
    return text


def _f(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _part_row(part: dict) -> str:
    seeds = " / ".join(_f(v) for v in part["per_seed"].values())
    spread = f"{_f(part['mean'], '+.2f')} ± {_f(part['se'])}"
    bounds = f"[{_f(part['low'], '+.2f')}, {_f(part['high'], '+.2f')}]"
    favour = f"{part['favour_a']}/{part['n']}" if "favour_a" in part else ""
    return f"| {part['statement']} | {seeds} | {spread} | {bounds} | {favour} | **{part['verdict']}** |"


def markdown_report(report: dict, figures: dict) -> str:
    """The report as Markdown: verdict table, rules, then per claim setup, numbers, verdict, figure."""
    lines = [f"# Paper claims: {report['suite']} suite", "", provenance(report), "", report["description"], "",
             "| # | Claim | Our number | Verdict |", "|---|---|---|---|"]
    for c in report["claims"]:
        lines.append(f"| {c['id']} | {c['title']} | {c['our_number']} | **{c['verdict']}** |")
    lines += ["", "## How verdicts are decided", "",
              f"Margin m = {report['settings']['margin_points']:g} accuracy point(s).", ""]
    lines += [f"- **{name}**: {text}" for name, text in report["rules"].items()]
    for note in report.get("notes", []):
        lines.append(f"- Note: {note}")
    table = report["comparison_table"]
    lines += ["", "## The comparison behind claims 1-4", "",
              "Test accuracy with BatchNorm statistics recomputed on training images after the last step; "
              "each variant against the default init (trained filters), judged by the rule the Training "
              "Lab and `compare` use.", "", Table(table["columns"], table["rows"]).markdown(), ""]
    lines += [f"- {verdict}" for verdict in report["comparison_verdicts"]]
    for c in report["claims"]:
        lines += ["", f"## Claim {c['id']}: {c['title']}", "", f"> {c['claim']} ({c['source']})", "",
                  f"**Setup.** {c['setup']}", ""]
        table = c["numbers"].get("table")
        if table:
            lines += ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
            lines += ["| " + " | ".join(row) + " |" for row in table["rows"]]
            lines.append("")
        lines += ["| test | per seed | mean ± SE | interval | seeds favouring A | verdict |",
                  "|---|---|---|---|---|---|"]
        lines += [_part_row(p) for p in c["parts"]]
        lines += ["", f"**Our number:** {c['our_number']}.  **Verdict: {c['verdict']}.**"]
        if c["id"] in figures:
            lines += ["", f"![Claim {c['id']}]({figures[c['id']]})"]
    lines += ["", "## Runs", "", "Test accuracy with settled BatchNorm statistics, and raw (the statistics "
              "training left; the CNFA CNN has no BatchNorm).", "",
              "| stage | variant | seed | status | test acc % | raw % | s |", "|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        lines.append(f"| {r['stage']} | {r['variant']} | {r['seed']} | {r['status']} | {_f(r['test_acc'])} | "
                     f"{_f(r.get('test_acc_raw'))} | {_f(r['wall_time'], '.0f')} |")
    lines += ["", "Figures are PNG files drawn with matplotlib; the app's Paper Claims page draws the same "
              "numbers interactively from report.json." if figures else
              "Figures were not drawn: matplotlib is not installed (the Paper Claims page draws them).", ""]
    return "\n".join(lines)


def write_report(report: dict, out: str | os.PathLike) -> Path:
    """report.json, report.md and one PNG per claim (matplotlib, when installed) in folder `out`."""
    from .plots import claims as claim_plots

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    figures = {}
    if claim_plots.can_draw_png():
        for c in report["claims"]:
            name = f"claim{c['id']}.png"
            claim_plots.save_png(c["figure"], folder / name)
            figures[c["id"]] = name
    (folder / REPORT_JSON).write_text(json.dumps(report, indent=1, allow_nan=False), encoding="utf-8")
    (folder / REPORT_MD).write_text(markdown_report(report, figures), encoding="utf-8")
    return folder


def default_out(suite: str) -> Path:
    """$CONVCOV_HOME/reports/<suite>-<UTC timestamp>."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return convcov_home() / "reports" / f"{suite}-{stamp}"


def reproduce(suite: str = "quick", *, out: str | os.PathLike | None = None, dataset: str | None = None,
              device: str = "auto", callback: Callable[[ProgressEvent], object] | None = None) -> Path | None:
    """Run a suite and write its report to `out` (default: default_out); return the folder, or None
    when the callback stopped it. The dataset is loaded and the folder created before any training,
    so a missing dataset or a bad path fails fast."""
    spec = build_suite(suite, dataset=dataset, device=device)
    load_training_data(spec.base)
    folder = Path(out) if out is not None else default_out(spec.name)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; give a folder for the report")
    folder.mkdir(parents=True, exist_ok=True)
    runs = run_suite(spec, callback)
    if runs is None:
        return None
    return write_report(make_report(runs), folder)


# ---------------------------------------------------------------------------------------------
# Finding reports
# ---------------------------------------------------------------------------------------------


def load_report(folder: str | os.PathLike) -> dict:
    """The report.json of a folder; ValueError when it is missing or not a convcov report."""
    path = Path(folder) / REPORT_JSON
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"no {REPORT_JSON} in {folder}") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON ({err})") from None
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT or "claims" not in report:
        raise ValueError(f"{path} is not a convcov claims report (format {REPORT_FORMAT})")
    return report


def report_folders() -> list[Path]:
    """Where reports are looked for: the repository's reports/ and $CONVCOV_HOME/reports."""
    return [REPO_REPORTS, convcov_home() / "reports"]


def find_reports(folders: list[Path] | None = None) -> list[tuple[Path, dict]]:
    """(folder, report) of every readable report one level below the given folders, newest first."""
    found = []
    for root in folders if folders is not None else report_folders():
        if not Path(root).is_dir():
            continue
        for path in sorted(Path(root).glob(f"*/{REPORT_JSON}")):
            try:
                found.append((path.parent, load_report(path.parent)))
            except ValueError:
                continue
    return sorted(found, key=lambda item: item[1].get("created", ""), reverse=True)
