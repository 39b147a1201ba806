"""What runs trials wherever an executor puts them (a pool process, a Ray worker): train() with a
progress reporter and a stop flag, every failure of a trial's own turned into a stored result; and
batches of compatible trials (a grid cell's seeds and schemes) trained together as one ensemble.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

from ..ensemble import ensemble_key, pays_off, train_ensemble, use_ensemble
from ..ensemble.plan import split_evenly
from ..train import ProgressEvent, RunResult, TrainConfig, new_history, train

REPORT_EVERY_S = 1.0  # seconds between a trial's "running" reports (the first step is always reported)


@dataclass(frozen=True)
class TrialProgress:
    """A running trial's last reported step: key, step of total_steps, loss."""

    key: str
    step: int
    total_steps: int
    loss: float | None


def run_trial(config: TrainConfig, key: str, report: Callable[[TrialProgress], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Train `config`; report(TrialProgress) about once a second; should_stop() True cancels (status
    "cancelled"). A trial that fails for a reason of its own (a bad config, an exception in
    training, running out of memory) comes back with status "failed" and the error as its message,
    so that it is recorded once and not retried; a diverged run comes back as train() returns it."""
    started = time.perf_counter()
    try:
        return train(config, _reporter([key], report, should_stop))
    except (Exception, MemoryError) as exc:  # the trial's own failure, recorded as such
        return failed_result(config, f"{type(exc).__name__}: {' '.join(str(exc).split())}",
                             time.perf_counter() - started)


def run_batch(configs: list[TrainConfig], keys: list[str], report: Callable[[TrialProgress], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> list[RunResult]:
    """The trials' RunResults, in order: trained together by ensemble.train_ensemble (compatible ones
    as one grouped network, in groups that fit in memory), each reported under its key as run_trial
    reports it. A batch whose ensemble fails (a config that cannot be built, an error in training)
    runs its trials one by one through run_trial, so each records its own failure."""
    if len(configs) == 1:
        return [run_trial(configs[0], keys[0], report, should_stop)]
    try:
        return train_ensemble(configs, _reporter(keys, report, should_stop))
    except (Exception, MemoryError):
        return [run_trial(config, key, report, should_stop) for config, key in zip(configs, keys)]


def _reporter(keys: list[str], report, should_stop) -> Callable[[ProgressEvent], str | None]:
    """A training callback: report(TrialProgress) of run run_index (keys[run_index]) at its first
    step and then about once a second; "stop" once should_stop() is True."""
    last = dict.fromkeys(keys, 0.0)

    def callback(event: ProgressEvent):
        key, now = keys[event.run_index], time.monotonic()
        if report is not None and event.kind == "step" and (event.step == 1 or now - last[key] >= REPORT_EVERY_S):
            last[key] = now
            report(TrialProgress(key, event.step, event.total_steps, event.loss))
        return "stop" if should_stop is not None and should_stop() else None

    return callback


def trial_batches(trials: list, slots: int, ensemble: bool | None = None) -> list[list]:
    """The trials (grid.Trial) in the batches an executor hands out, one batch to a worker: with
    ensemble (None: for trials where ensemble.pays_off), trials sharing ensemble.ensemble_key (a grid
    cell's seeds and schemes) in batches of at most ceil(len(trials) / slots), so that every one of
    the executor's slots gets work; else one trial each."""
    most = max(1, math.ceil(len(trials) / max(slots, 1)))
    by_key: dict[str, list] = {}
    for i, trial in enumerate(trials):
        key = ensemble_key(trial.config) if use_ensemble(trial.config, ensemble) else f"alone {i}"
        by_key.setdefault(key, []).append(trial)
    return [[same[i] for i in batch] for same in by_key.values()
            for batch in split_evenly(list(range(len(same))), most)]


def batching(ensemble: bool | None) -> str:
    """How trial_batches hands out trials, in the words of an executor's describe(): with ensemble
    None as this machine, where the batches are made, decides for a trial on device "auto"
    (ensemble.pays_off)."""
    if ensemble is None and not pays_off(TrainConfig()):
        return "each trial trained alone (the default on the CPU, where training together does not pay off)"
    if ensemble is None:
        return "compatible trials trained together (the default on an accelerator)"
    return "compatible trials trained together" if ensemble else "each trial trained alone"


def failed_result(config: TrainConfig, message: str, wall_time: float = 0.0) -> RunResult:
    """The RunResult of a trial that did not train: status "failed", no metrics."""
    final = {"test_acc": None, "test_acc_raw": None, "train_acc": None, "loss": None}
    return RunResult(config=config, history=new_history(), final=final, status="failed", message=message,
                     wall_time=wall_time, device="none")
