"""Paired comparisons over seeds: several variants of one config, each trained once per seed, seed by
seed, and judged against a reference variant on a final metric (METRICS) by stats.paired_verdict.

Above train and ensemble: the runs train one after another (train.train) or together as grouped
networks (ensemble.train_ensemble).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable

from . import stats
from .ensemble import estimate_time as ensemble_time
from .ensemble import train_ensemble, use_ensemble
from .train import Callback, ProgressEvent, RunResult, TrainConfig, estimate_time, train, wants_stop


@dataclass
class ComparisonResult:
    """Runs of several variants over the same seeds, with paired statistics.

    rows: one dict per variant: variant, reference (the variant it is paired against), n (finished
    seeds), mean, std, per_seed {seed: metric or None}, diffs {seed: diff}, diff_mean, diff_std,
    diff_low / diff_high (the 95% t interval of the mean difference), winner (the variant that
    stats.paired_verdict names, or None), wins (seeds where it beat its reference), losses,
    mean_time (s per run), statuses. verdicts: one sentence per non-reference variant; verdict joins
    them. metric: the final-metric key judged (METRICS).
    """

    base_config: TrainConfig
    variants: dict
    seeds: list
    runs: dict
    rows: list
    verdicts: list
    wall_time: float
    status: str = "ok"
    references: dict = field(default_factory=dict)
    id: int | None = None
    metric: str = "test_acc"

    @property
    def verdict(self) -> str:
        return " ".join(self.verdicts)

    def judged_on(self, metric: str) -> "ComparisonResult":
        """The same runs with the table and verdicts worked out on another final metric (METRICS)."""
        rows, verdicts = summarize(self.variants, self.seeds, self.runs, self.references, metric)
        return dataclasses.replace(self, rows=rows, verdicts=verdicts, metric=metric)

    def variants_dict(self) -> dict:
        """The variants' overrides as plain data: learned covariances become their count
        (n_covariances, as in TrainConfig.to_dict; each run keeps its own in its config)."""
        out = {}
        for name, overrides in self.variants.items():
            out[name] = {key: value for key, value in overrides.items() if key != "covariances"}
            if overrides.get("covariances") is not None:
                out[name]["n_covariances"] = len(overrides["covariances"])
        return out

    def to_dict(self) -> dict:
        """JSON-safe summary: configs, rows, verdicts and every run's final metrics and history."""
        return {
            "base_config": self.base_config.to_dict(),
            "variants": self.variants_dict(),
            "references": self.references,
            "metric": self.metric,
            "seeds": self.seeds,
            "rows": self.rows,
            "verdicts": self.verdicts,
            "wall_time": self.wall_time,
            "status": self.status,
            "runs": {
                name: [{"seed": r.config.seed, "status": r.status, "message": r.message,
                        "final": r.final, "wall_time": r.wall_time, "device": r.device,
                        "history": r.history} for r in runs]
                for name, runs in self.runs.items()
            },
        }


@dataclass
class ComparisonPlan:
    """What compare (or JobManager.submit("compare", ...)) takes: the base config, the variants
    (overrides of it), the reference of each, the seeds and whether the runs train together."""

    base: TrainConfig
    variants: dict
    references: dict
    seeds: list
    ensemble: bool | None = None

    @property
    def n_runs(self) -> int:
        return len(self.variants) * len(self.seeds)

    def config(self, variant: str, seed: int | None = None) -> TrainConfig:
        """The full config of one run."""
        return self.base.replace(**self.variants[variant], seed=self.seeds[0] if seed is None else seed)

    def run_configs(self) -> list[TrainConfig]:
        """The full config of every run, variant by variant, seed by seed."""
        return [self.config(variant, seed) for variant in self.variants for seed in self.seeds]


#: What a comparison judges: the final test accuracy with settled BatchNorm statistics (the
#: headline), or the raw eval-mode accuracy with the statistics training left (--raw-bn-eval).
METRICS = {"test_acc": "test accuracy", "test_acc_raw": "raw eval-mode test accuracy"}


def summarize(variants: dict, seeds: list, runs: dict, references: dict,
              metric: str = "test_acc") -> tuple[list, list]:
    """(rows, verdicts) from finished runs, judged on final[metric] by stats.paired_verdict; see
    ComparisonResult for the row fields."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    rows, verdicts = [], []
    for name in variants:
        by_seed = {r.config.seed: r for r in runs.get(name, [])}
        acc = {s: by_seed[s].final.get(metric) if s in by_seed else None for s in seeds}
        spread = stats.mean_interval(acc.values())
        ref = references.get(name)
        row = {"variant": name, "reference": ref, "n": spread.n, "mean": spread.mean, "std": spread.std,
               "per_seed": acc, "diffs": {}, "diff_mean": None, "diff_std": None, "diff_low": None,
               "diff_high": None, "winner": None, "wins": 0, "losses": 0,
               "mean_time": (sum(r.wall_time for r in by_seed.values()) / len(by_seed)) if by_seed else None,
               "statuses": {s: by_seed[s].status for s in seeds if s in by_seed}}
        if ref is not None:
            ref_acc = {r.config.seed: r.final.get(metric) for r in runs.get(ref, [])}
            paired = [s for s in seeds if acc[s] is not None and ref_acc.get(s) is not None]
            verdict = stats.paired_verdict([acc[s] for s in paired], [ref_acc[s] for s in paired])
            row.update(diffs=dict(zip(paired, verdict.diffs)), diff_mean=verdict.mean, diff_std=verdict.std,
                       diff_low=verdict.low, diff_high=verdict.high,
                       winner={"a": name, "b": ref}.get(verdict.winner), wins=verdict.favour_a,
                       losses=verdict.favour_b)
            verdicts.append(verdict.sentence(name, ref))
        rows.append(row)
    return rows, verdicts


def device_and_precision(cmp: "ComparisonResult") -> str:
    """Where and in what precision a comparison's runs trained, e.g. "cpu, bf16 autocast"."""
    run = next((r for runs in cmp.runs.values() for r in runs), None)
    if run is None:
        return "?"
    return f"{run.device}, bf16 autocast" if run.precision == "bf16" else f"{run.device}, fp32"


FREEZE_MODES = ("none", "filters", "both")


def variants_for(inits: list[str], freeze: str) -> tuple[dict, dict]:
    """(variants, references) for compare(): every init scheme in `inits`, with its depthwise filters
    trained (freeze "none"), frozen ("filters") or both ("default", "default-frozen", ...); each
    variant is paired with the first init of its own kind."""
    if freeze not in FREEZE_MODES:
        raise ValueError(f"freeze must be one of {', '.join(FREEZE_MODES)}, got {freeze!r}")
    if len(set(inits)) != len(inits):
        raise ValueError(f"the init schemes list one twice: {','.join(inits)}")
    modes = {"none": [False], "filters": [True], "both": [False, True]}[freeze]
    variants, references = {}, {}
    for frozen in modes:
        names = [f"{i}-frozen" if frozen else i for i in inits]
        for scheme, name in zip(inits, names):
            variants[name] = {"init": scheme, "freeze_filters": frozen}
            references[name] = names[0] if name != names[0] else None
    return variants, references


def compare(base_config: TrainConfig, variants: dict, seeds, callback: Callback | None = None, *,
            references: dict | None = None, metric: str = "test_acc", ensemble: bool | None = None,
            finished=(), on_result: Callable[[RunResult], None] | None = None) -> ComparisonResult:
    """Train every variant (overrides of base_config) once per seed, seed by seed, and compare the
    final test accuracies (final[metric]: settled BatchNorm statistics by default, see METRICS):
    mean ± std per variant and paired differences against a reference variant (the first one
    unless `references` maps a variant to another). ensemble: the runs train together as one grouped
    network (convcov_core.ensemble.train_ensemble: in groups that fit in memory; a network it
    cannot group trains alone), each ending as its lone run would; False: one after another; None:
    together on accelerators, one after another on the CPU (ensemble.pays_off). A
    callback answer of True/"stop" cancels the remaining runs (with the ensemble, the whole group
    training then); the finished ones are summarized. finished: runs of this comparison trained
    before (an interrupted job's, read back from the run store): kept, and their variant and seed
    not trained again; wall_time then counts their own. on_result(run): each run trained here, as
    soon as it ends (with the ensemble, as its group ends); cancelled runs are not passed."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    if not variants:
        raise ValueError("compare needs at least one variant")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("compare needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    first = next(iter(variants))
    refs = paired_references(variants, references)
    configs = {name: base_config.replace(**overrides).validate() for name, overrides in variants.items()}
    for seed in seeds:
        configs[first].replace(seed=seed).validate()

    started = time.perf_counter()
    kept = _finished_pairs(finished, variants, seeds)
    order = [(name, seed) for seed in seeds for name in variants if (name, seed) not in kept]  # run_index: place here

    def ended(result: RunResult) -> None:
        if on_result is not None and result.status != "cancelled":
            on_result(result)

    trained = (_together if use_ensemble(base_config, ensemble) else _one_after_another)(
        [configs[name].replace(seed=seed) for name, seed in order], [name for name, _ in order], callback,
        ended) if order else []
    by_pair = {**kept, **{pair: r for pair, r in zip(order, trained) if r.status != "cancelled"}}
    runs = {name: [by_pair[name, seed] for seed in seeds if (name, seed) in by_pair] for name in variants}
    cancelled = len(trained) < len(order) or any(r.status == "cancelled" for r in trained)
    rows, verdicts = summarize(variants, seeds, runs, refs, metric)
    wall_time = time.perf_counter() - started + sum(r.wall_time for r in kept.values())
    return ComparisonResult(base_config=base_config, variants=dict(variants), seeds=seeds, runs=runs,
                            rows=rows, verdicts=verdicts, wall_time=wall_time,
                            status="cancelled" if cancelled else "ok", references=refs, metric=metric)


def paired_references(variants: dict, references: dict | None) -> dict:
    """The reference of every variant: as `references` maps it, else the first variant (None for the
    first itself); ValueError for a reference to a variant that is not being run."""
    first = next(iter(variants))
    references = dict(references or {})
    for name, ref in references.items():
        if name not in variants or (ref is not None and ref not in variants):
            raise ValueError(f"reference {name!r} -> {ref!r} names a variant that is not being run")
    return {name: references.get(name, first if name != first else None) for name in variants}


def _finished_pairs(finished, variants: dict, seeds: list) -> dict:
    """{(variant, seed): run} of runs trained before; ValueError for one this comparison does not
    have, or for two of the same variant and seed."""
    pairs = {}
    for run in finished:
        pair = (run.variant, run.config.seed)
        if run.variant not in variants or run.config.seed not in seeds or pair in pairs:
            raise ValueError(f"a finished run ({run.variant}, seed {run.config.seed}) is not one this comparison "
                             "still needs: its variant or seed is not in it, or it is given twice")
        pairs[pair] = run
    return pairs


def _together(configs: list[TrainConfig], names: list[str], callback: Callback | None, ended) -> list:
    """Every config's RunResult from train_ensemble (run_index: its place in configs); ended(result)
    as each group ends."""
    return train_ensemble(configs, callback, variants=names, on_result=ended)


def _one_after_another(configs: list[TrainConfig], names: list[str], callback: Callback | None, ended) -> list:
    """The RunResults of train() on each config in turn, up to the first cancelled one (included);
    ended(result) after each."""
    results = []
    for i, (config, name) in enumerate(zip(configs, names)):
        stop = []

        def relay(event: ProgressEvent):
            answer = callback(event) if callback is not None else None
            if wants_stop(answer):
                stop.append(True)
            return answer

        results.append(train(config, relay, variant=name, run_index=i, n_runs=len(configs)))
        ended(results[-1])
        if results[-1].status == "cancelled" or stop:
            break
    return results


def compare_seconds(base_config: TrainConfig, variants: dict, seeds, *, ensemble: bool | None = None,
                    n_steps: int = 3) -> float:
    """Seconds compare(base_config, variants, seeds, ensemble=ensemble) should take on this machine:
    with the ensemble, ensemble.estimate_time (a few steps of the runs trained together, one
    evaluation); else estimate_time of the first variant of each filter mode (trained or frozen),
    times the runs of that mode. Every variant's config is validated first (ValueError before any timing)."""
    seeds = list(seeds)
    configs = {name: base_config.replace(**overrides, seed=seeds[0]).validate() for name, overrides in variants.items()}
    if use_ensemble(base_config, ensemble) and len(variants) * len(seeds) > 1:
        return ensemble_time([config.replace(seed=seed) for seed in seeds for config in configs.values()], n_steps)
    by_mode: dict[bool, list[str]] = {}
    for name, config in configs.items():
        by_mode.setdefault(bool(config.freeze_filters), []).append(name)
    return sum(estimate_time(configs[names[0]], n_steps) * len(names) * len(seeds) for names in by_mode.values())
