"""Sweeps: many seeded runs over a grid of training settings, on this machine or a Ray cluster,
resumable, and turned into the effect of each init scheme against the reference per cell.

    grid         Sweep (base config, axes, schemes, seeds), Trial, trial_key, parse_values
    store        SweepStore: sweeps and their trials' results in the run store's SQLite file
    worker       run_trial, run_batch: trials wherever they run (compatible ones together as one
                 ensemble), their own failures recorded, not raised
    executor     Executor: the protocol every executor follows (describe, run, slots, threads)
    local        LocalPool: worker processes on this machine (the default executor)
    ray_cluster  RayExecutor: Ray tasks on a cluster (optional dependency)
    ray_job      RaySpec, run_sweep_apart: a Ray sweep driven from a process of its own, for the app,
                 whose server must never be a Ray driver
    run          run_sweep, run_trials: skip what is stored, run the rest, store results, progress events;
                 trial_seconds, pending_seconds: how long the trials left should take
    results      trial_table, cell_effects, write_table
"""

from __future__ import annotations

from .executor import Executor
from .grid import AXES, Sweep, Trial, parse_values, trial_key
from .local import LocalPool
from .ray_cluster import ClusterUnreachable, RayExecutor
from .results import cell_effects, trial_table, write_table
from .run import SweepEvent, SweepOutcome, pending_seconds, run_sweep, run_trials, trial_seconds
from .store import SweepStore, SweepSummary

EXECUTORS = ("local", "ray")


def make_executor(name: str = "local", *, workers: int | None = None, ray_address: str | None = None,
                  cpus_per_trial: float = 1, gpus_per_trial: float = 0, ensemble: bool | None = None) -> Executor:
    """The executor called `name`: "local" (LocalPool with `workers` processes) or "ray"
    (RayExecutor at `ray_address`, None: a Ray started on this machine with `workers` CPUs);
    ensemble: compatible trials trained together in batches (worker.trial_batches; None: where it pays off)."""
    if name == "local":
        return LocalPool(workers, ensemble=ensemble)
    if name == "ray":
        return RayExecutor(ray_address, workers, cpus_per_trial, gpus_per_trial, ensemble=ensemble)
    raise ValueError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")


__all__ = ["AXES", "EXECUTORS", "ClusterUnreachable", "Executor", "LocalPool", "RayExecutor", "Sweep", "SweepEvent",
           "SweepOutcome", "SweepStore", "SweepSummary", "Trial", "cell_effects", "make_executor", "parse_values",
           "pending_seconds", "run_sweep", "run_trials", "trial_key", "trial_seconds", "trial_table", "write_table"]
