"""Running: train everything a suite needs as sweeps on an executor (the local process pool unless
told otherwise), resumable through the run store, relaying progress and honouring a stop
(run_suite); prepare(), the suite and its report folder checked before any training; and
reproduce(), which runs a suite and writes its report.

Stages: the sources (unless the suite takes the bundled example), the target grid, the effect map
and its frozen-filter twin (one sweep each, their trials in parallel), then the learned-init trials
(they need the sources' covariances), then the CNNs of claim 5 one after another. Every trial is
stored under its key (sweep.trial_key), so a suite that was stopped in any way runs again from where
it stood, and the map shares its trials with the target.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from pathlib import Path
from typing import Callable

from .. import cnfa, model_pairs
from ..compare import ComparisonResult, summarize
from ..examples import load_example
from ..sweep import (
    Executor,
    LocalPool,
    SweepEvent,
    SweepStore,
    pending_seconds,
    run_sweep,
    run_trials,
    trial_seconds,
    trial_table,
)
from ..train import ProgressEvent, RunResult, estimate_time, load_training_data
from .files import default_out
from .report import make_report, write_report
from .suites import Suite, SuiteRuns, build_suite, suite_runs, suite_sweeps


def _load_average() -> list | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


class _Relay:
    """Passes progress on as ProgressEvents with the suite-wide run index, run count and a stage
    label (training events of the CNNs, sweep events of the trials); remembers a stop request."""

    def __init__(self, callback, n_runs: int):
        self.callback, self.n_runs, self.offset, self.label, self.stopped = callback, n_runs, 0, "", False
        self.stored = None  # trials of the stage found in the store before it ran

    def at(self, offset: int, label: str) -> "_Relay":
        self.offset, self.label, self.stored = offset, label, None
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

    def trial(self, event: SweepEvent) -> None:
        """A sweep's event as a ProgressEvent: "step" while a trial runs, "done" when it is stored;
        its run index counts the trials this stage has trained (a trial found stored is no run)."""
        if event.kind == "queued":
            self.stored = event.n_finished if self.stored is None else self.stored
            return
        trial, done = event.trial, event.kind in ("done", "failed")
        trained = event.n_finished - (self.stored or 0)
        self(ProgressEvent(kind="done" if done else "step", step=event.step or 0, total_steps=event.total_steps or 0,
                           epoch=0, loss=event.loss, variant=trial.init, seed=trial.seed,
                           run_index=max(0, trained - 1 if done else trained),
                           status=("ok" if event.kind == "done" else "failed") if done else None))

    def stop_requested(self) -> bool:
        return self.stopped


def _sweep_stage(relay: _Relay, index: int, label: str, run) -> tuple[int, bool]:
    """Run one stage (run(on_event, should_stop) -> SweepOutcome) under `label`; (the next run index:
    after the trials it trained, whether it was stopped)."""
    outcome = run(relay.at(index, label).trial, relay.stop_requested)
    return index + outcome.ran, outcome.cancelled or relay.stopped


def run_suite(suite: Suite, callback: Callable[[ProgressEvent], object] | None = None, *,
              executor: Executor | None = None, store: SweepStore | None = None) -> SuiteRuns | None:
    """Train everything the suite needs (trials on `executor`, default LocalPool(); results in
    `store`, default the run store); None when the callback asked to stop (answering True/"stop")."""
    started, clock, cpu = time.time(), time.perf_counter(), _cpu_seconds()
    load_start = _load_average()
    executor = executor if executor is not None else LocalPool()
    store = store if store is not None else SweepStore()
    relay, sweeps, notes = _Relay(callback, suite_runs(suite)), suite_sweeps(suite), []
    index = 0
    stages = [("claim 3 source", sweeps.sources), ("claims 1-4", sweeps.target), ("claim 6 map", sweeps.effect_map),
              ("claim 2 cases", sweeps.frozen_map)]
    for label, grid in stages:
        if grid is None:
            continue
        index, stopped = _sweep_stage(relay, index, label,
                                      lambda on_event, stop, g=grid: run_sweep(g, store, executor, on_event, stop))
        if stopped:
            return None
    sources, covariances = _source_covariances(suite, sweeps, store, notes)
    learned = sweeps.learned_trials(covariances) if suite.sourced else []
    index, stopped = _sweep_stage(relay, index, "claims 1-4",
                                  lambda on_event, stop: run_trials(f"{sweeps.target.name}-learned", learned, store,
                                                                    executor, on_event, stop))
    if stopped:
        return None
    cnfa_tables = _train_cnns(suite, relay, index)
    if cnfa_tables is None:
        return None
    runs = _target_runs(suite, store, sweeps.target.trials(), learned)
    variants, first = suite.variants, next(iter(suite.variants))
    references = {name: (None if name == first else first) for name in variants}
    rows, verdicts = summarize(variants, suite.seeds, runs, references)
    base = suite.base.replace(covariances=None)
    comparison = ComparisonResult(base_config=base, variants=dict(variants), seeds=list(suite.seeds),
                                  runs=runs, rows=rows, verdicts=verdicts,
                                  wall_time=time.perf_counter() - clock, references=references)
    return SuiteRuns(suite, comparison, sources, cnfa_tables, time.perf_counter() - clock,
                     _cpu_seconds() - cpu, started, load_start, _load_average(), notes,
                     effect_map=sweeps.effect_map, map_table=trial_table(sweeps.effect_map, store),
                     n_trained=index + len(cnfa_tables), frozen_table=trial_table(sweeps.frozen_map, store))


def _source_covariances(suite: Suite, sweeps, store: SweepStore, notes: list) -> tuple[dict, dict]:
    """({seed: source run}, {seed: its learned covariances}) for claim 3: each seed's trained source,
    or the bundled example (examples.load_example) for every seed; a failed source is noted."""
    if sweeps.sources is None:
        example = load_example()
        return ({seed: example for seed in suite.seeds}, {seed: example.covariances for seed in suite.seeds})
    trials = sweeps.sources.trials()
    runs, covariances = dict(zip(suite.seeds, _results(store, trials))), {}
    for trial in trials:
        run = runs[trial.seed]
        if run is not None and run.status == "ok" and run.covariances:
            covariances[trial.seed] = run.covariances
        elif suite.sourced:
            notes.append(f"seed {trial.seed}: the source run ended {run.status if run else 'missing'} "
                         f"({run.message if run else ''}); no learned-init run for this seed")
    return runs, covariances


def _results(store: SweepStore, trials) -> list[RunResult | None]:
    """The stored run of each trial (None where it is missing)."""
    found = store.finished(t.key for t in trials)
    return [store.runs.get(found[t.key]["run_id"]) if t.key in found else None for t in trials]


def _target_runs(suite: Suite, store: SweepStore, trials: list, learned: list) -> dict:
    """{variant: [its runs, seed by seed]} of claims 1-4, the variant named by init and frozen filters."""
    variant_of = {(o["init"], bool(o.get("freeze_filters"))): name for name, o in suite.variants.items()}
    runs = {name: [] for name in suite.variants}
    for trial, run in zip([*trials, *learned], _results(store, [*trials, *learned])):
        if run is not None:
            name = variant_of[(trial.config.init, trial.config.freeze_filters)]
            runs[name].append(dataclasses.replace(run, variant=name))
    return runs


def _train_cnns(suite: Suite, relay: _Relay, index: int) -> dict | None:
    """Claim 5: per seed a plain CNN trained and its CNFA check trained vs at init; None if stopped."""
    tables = {}
    for seed in suite.seeds:
        config = suite.cnn.replace(seed=seed)
        pair = model_pairs.train_cnn(config, relay.at(index, "claim 5 CNN"))
        index += 1
        if pair is None or relay.stopped:
            return None
        table = cnfa.compare_cnfa(pair, cnfa.analysis_images(config, suite.cnfa_images)).table()
        tables[seed] = {"label": pair.label, "test_acc": pair.test_acc,
                        "layers": [{"layer": r["layer"], "kind": r["kind"], "r_trained": r["r trained"],
                                    "r_init": r["r at init"], "r_control": r["r(CNFM init, CNFM trained)"]}
                                   for r in table]}
    return tables


def estimate_seconds(suite: Suite, executor: Executor, store: SweepStore) -> tuple[float, int]:
    """(seconds run_suite should take on `executor`, the training runs left): the sweeps' trials not
    yet in `store` (sweep.pending_seconds: a few timed steps of two trials of each), the learned-init
    trials left at the target's trial time (all of them while a source is still to train), and the
    CNNs of claim 5 (train.estimate_time of one, times the seeds; they always train)."""
    sweeps = suite_sweeps(suite)
    grids = [g for g in (sweeps.sources, sweeps.target, sweeps.effect_map, sweeps.frozen_map) if g is not None]
    seconds, n_todo = pending_seconds(grids, executor, store)
    if suite.sourced:
        sources = [] if sweeps.sources is None else [t.key for t in sweeps.sources.trials()]
        if len(store.finished(sources)) == len(sources):  # the learned trials' keys are known
            learned = sweeps.learned_trials(_source_covariances(suite, sweeps, store, [])[1])
            n_learned = len(learned) - len(store.finished(t.key for t in learned))
        else:
            n_learned = len(suite.seeds)
        if n_learned:
            seconds += trial_seconds(sweeps.target, executor) * n_learned / max(1, executor.slots)
            n_todo += n_learned
    seconds += estimate_time(suite.cnn) * len(suite.seeds)
    return seconds, n_todo + len(suite.seeds)


def prepare(suite: str | Suite = "quick", *, out: str | os.PathLike | None = None, dataset: str | None = None,
            device: str = "auto") -> tuple[Suite, Path]:
    """The suite (built from its name with `dataset` and `device`, or as given) and its report folder
    (`out`, default: default_out), created; its dataset is loaded first, so a missing dataset or a
    bad path fails before any training."""
    spec = build_suite(suite, dataset=dataset, device=device) if isinstance(suite, str) else suite
    load_training_data(spec.base)
    folder = Path(out) if out is not None else default_out(spec.name)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; give a folder for the report")
    folder.mkdir(parents=True, exist_ok=True)
    return spec, folder


def reproduce(suite: str | Suite = "quick", *, out: str | os.PathLike | None = None, dataset: str | None = None,
              device: str = "auto", callback: Callable[[ProgressEvent], object] | None = None,
              executor: Executor | None = None, store: SweepStore | None = None) -> Path | None:
    """Run a suite (prepare, then run_suite: its trials on `executor`, stored in `store`) and write its
    report to the folder; return the folder, or None when the callback stopped it."""
    spec, folder = prepare(suite, out=out, dataset=dataset, device=device)
    runs = run_suite(spec, callback, executor=executor, store=store)
    if runs is None:
        return None
    return write_report(make_report(runs), folder)
