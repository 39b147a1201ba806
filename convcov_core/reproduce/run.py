"""Running: train everything a suite needs, relaying progress and honouring a stop (run_suite), and
reproduce(), which runs a suite and writes its report."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable

from .. import cnfa, model_pairs
from ..train import ComparisonResult, ProgressEvent, compare, load_training_data, summarize, train
from .files import default_out
from .report import make_report, write_report
from .suites import Suite, SuiteRuns, build_suite, suite_runs


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
    sources, cnfa_tables, notes = {}, {}, []
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
        pair = model_pairs.train_cnn(config, relay.at(index, "claim 5 CNN"))
        index += 1
        if pair is None or relay.stopped:
            return None
        table = cnfa.compare_cnfa(pair, cnfa.analysis_images(config, suite.cnfa_images)).table()
        cnfa_tables[seed] = {"label": pair.label, "test_acc": pair.test_acc,
                      "layers": [{"layer": r["layer"], "kind": r["kind"], "r_trained": r["r trained"],
                                  "r_init": r["r at init"], "r_control": r["r(CNFM init, CNFM trained)"]}
                                 for r in table]}
    references = {name: (None if name == first else first) for name in variants}
    rows, verdicts = summarize(variants, suite.seeds, runs, references)
    base = suite.base.replace(covariances=None)
    comparison = ComparisonResult(base_config=base, variants=dict(variants), seeds=list(suite.seeds),
                                  runs=runs, rows=rows, verdicts=verdicts,
                                  wall_time=time.perf_counter() - clock, references=references)
    return SuiteRuns(suite, comparison, sources, cnfa_tables, time.perf_counter() - clock,
                     time.process_time() - cpu, started, load_start, _load_average(), notes)


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
