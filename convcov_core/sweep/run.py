"""Running a sweep: register it, skip the trials already in the store, hand the rest to an executor,
store each result as it comes back (the driver is the only writer), and report progress.

Events (SweepEvent) for the CLI and the app: "queued" per trial to run, "running" with its step and
loss, "done" or "failed" when it is stored; each carries the sweep's counts and an ETA from the
pace of the trials finished so far (elapsed / finished x remaining, so it includes the executor's
parallelism and settles as trials finish).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..train import estimate_time
from .executor import Executor
from .grid import Sweep, Trial
from .store import SweepStore
from .worker import TrialProgress


@dataclass
class SweepEvent:
    """kind: "queued", "running", "done" or "failed"; the trial it is about; for "running" its step
    of total_steps and loss; the sweep's counts (n_total trials, n_finished stored, n_failed of
    those) and eta_s (None until a trial has finished in this run)."""

    kind: str
    trial: Trial
    n_total: int
    n_finished: int
    n_failed: int
    eta_s: float | None = None
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    message: str = ""


@dataclass
class SweepOutcome:
    """What one run_sweep call did: trials found already stored (skipped), run and stored here
    (ran, of which failed), and whether it was cancelled before the end."""

    name: str
    n_total: int
    skipped: int
    ran: int
    failed: int
    cancelled: bool
    wall_time: float


def run_sweep(sweep: Sweep, store: SweepStore, executor: Executor, on_event: Callable[[SweepEvent], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> SweepOutcome:
    """Run every trial of `sweep` not yet in `store` on `executor` (such as local.LocalPool or
    ray_cluster.RayExecutor); cancelled trials are not stored, so resuming runs them again."""
    trials = sweep.validate().trials()
    store.register(sweep, trials)
    return run_trials(sweep.name, trials, store, executor, on_event, should_stop)


def run_trials(name: str, trials: list[Trial], store: SweepStore, executor: Executor,
               on_event: Callable[[SweepEvent], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> SweepOutcome:
    """run_sweep for trials that no registered grid lists (such as learned-init trials, whose
    covariances a sweep's spec does not keep): each not yet stored under its key runs on `executor`
    and is stored under its key with the run name "sweep <name>"."""
    started = time.perf_counter()
    stored = store.finished(t.key for t in trials)
    todo = [t for t in trials if t.key not in stored]
    tally = _Tally(len(trials), len(stored), sum(r["status"] != "ok" for r in stored.values()), on_event)
    by_key = {t.key: t for t in todo}
    for trial in todo:
        tally.emit("queued", trial)

    def progress(report: TrialProgress):
        tally.emit("running", by_key[report.key], step=report.step, total_steps=report.total_steps,
                   loss=report.loss)

    cancelled = False
    for trial, result in executor.run(todo, progress, should_stop or (lambda: False)):
        if result.status == "cancelled":
            cancelled = True
            continue
        store.save(trial, result, name)
        tally.finish(trial, result)
    cancelled = cancelled or tally.ran < len(todo)
    return SweepOutcome(name=name, n_total=len(trials), skipped=len(stored), ran=tally.ran,
                        failed=tally.ran_failed, cancelled=cancelled, wall_time=time.perf_counter() - started)


class _Tally:
    """The sweep's counts while it runs, and the events that carry them."""

    def __init__(self, n_total: int, n_stored: int, n_failed: int, on_event):
        self.n_total, self.n_finished, self.n_failed, self.on_event = n_total, n_stored, n_failed, on_event
        self.ran = self.ran_failed = 0
        self.started = time.perf_counter()

    def eta(self) -> float | None:
        if not self.ran:
            return None
        return (time.perf_counter() - self.started) / self.ran * (self.n_total - self.n_finished)

    def emit(self, kind: str, trial: Trial, **values) -> None:
        if self.on_event is not None:
            self.on_event(SweepEvent(kind, trial, self.n_total, self.n_finished, self.n_failed, self.eta(), **values))

    def finish(self, trial: Trial, result) -> None:
        failed = result.status != "ok"
        self.ran += 1
        self.ran_failed += failed
        self.n_finished += 1
        self.n_failed += failed
        self.emit("failed" if failed else "done", trial, message=result.message)


def trial_seconds(sweep: Sweep, executor: Executor) -> float:
    """Seconds one trial of `sweep` should take where `executor` runs it: train.estimate_time (3
    timed steps on this machine) of the first and the last cell's first trial, averaged, with the
    torch threads each trial gets there (executor.threads)."""
    trials = sweep.trials()
    probes = {trials[0].key: trials[0], trials[-1].key: trials[-1]}.values()
    return sum(estimate_time(t.config.replace(threads=executor.threads)) for t in probes) / len(probes)


def pending_seconds(grids, executor: Executor, store: SweepStore) -> tuple[float, int]:
    """(seconds the trials of `grids` not yet in `store` should take on `executor`, how many they
    are): each grid's trial_seconds times its trials left, a trial that several grids share counted
    once (with the first), over the trials that run at once (executor.slots). A grid with nothing
    left is not timed."""
    seen, seconds, n_todo = set(), 0.0, 0
    for grid in grids:
        keys = [t.key for t in grid.trials() if t.key not in seen]
        seen.update(keys)
        todo = len(keys) - len(store.finished(keys)) if keys else 0
        if todo:
            seconds += trial_seconds(grid, executor) * todo
            n_todo += todo
    return seconds / max(1, executor.slots), n_todo
