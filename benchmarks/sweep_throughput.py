"""Trials per hour of a 16-trial sweep: sequential `compare` (one process, all cores, trial after
trial) against the local pool (2 workers, 1 thread each) and Ray (2 one-CPU workers on this
machine), same grid, same run.

    python benchmarks/sweep_throughput.py           # the Lab's model, ConvMixer-64/8 k=15 p=2 on mnist5k
    python benchmarks/sweep_throughput.py --steps 60
    python benchmarks/sweep_throughput.py --quick   # tiny smoke run

The grid: schemes default and gaussian x filters trained and frozen x seeds 0-3, each trial capped at
--steps training steps (plus its evaluation), so a round takes minutes on 2 cores; the ratio is what
the executors change. Each executor starts fresh (its worker start-up counts); Ray's start-up
(ray.init of a new local instance) is timed on its own and reported with the per-trial overhead
(Ray's wall time minus the pool's, per trial).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from convcov_core.compare import compare, variants_for
from convcov_core.sweep import LocalPool, Sweep, SweepStore, run_sweep
from convcov_core.sweep.ray_cluster import RayExecutor
from convcov_core.train import TrainConfig

LAB = TrainConfig(model="convmixer-64/8", kernel_size=15, patch_size=2, dataset="mnist5k", epochs=1)
QUICK = TrainConfig(model="convmixer-8/1", kernel_size=3, patch_size=2, dataset="mnist5k", epochs=1, batch_size=32)
SEEDS, QUICK_SEEDS = [0, 1, 2, 3], [0]


def sequential(base: TrainConfig, seeds: list[int]) -> float:
    """Wall seconds of today's path: compare() over both schemes, trained and frozen, seed by seed."""
    variants, references = variants_for(["default", "gaussian"], "both")
    started = time.perf_counter()
    compare(base, variants, seeds, references=references)
    return time.perf_counter() - started


def swept(base: TrainConfig, seeds: list[int], executor) -> float:
    """Wall seconds of the same trials as a sweep on `executor`, into a fresh store."""
    sweep = Sweep("bench", base, {"freeze_filters": [False, True]}, ["default", "gaussian"], seeds)
    store = SweepStore(tempfile.mkdtemp(prefix="convcov-bench-") + "/runs.db")
    started = time.perf_counter()
    outcome = run_sweep(sweep, store, executor)
    assert outcome.ran == sweep.n_trials and outcome.failed == 0, outcome
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps per trial")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    base, seeds = (QUICK.replace(max_steps=2), QUICK_SEEDS) if args.quick else (LAB.replace(max_steps=args.steps),
                                                                                 SEEDS)
    n = 4 * len(seeds)
    print(f"{n} trials of {base.model} k={base.kernel_size} on {base.dataset}, {base.max_steps} steps each")
    seconds = {"sequential compare": sequential(base, seeds),
               "local pool, 2 x 1 thread": swept(base, seeds, LocalPool(workers=2, threads=1))}
    started = time.perf_counter()
    ray_executor = RayExecutor(workers=2)
    ray_start = time.perf_counter() - started
    seconds["ray, 2 x 1 CPU"] = swept(base, seeds, ray_executor)
    print(f"{'executor':26s} {'wall s':>8s} {'trials/hour':>12s}")
    for name, wall in seconds.items():
        print(f"{name:26s} {wall:8.1f} {3600 * n / wall:12.0f}")
    pool, ray = seconds["local pool, 2 x 1 thread"], seconds["ray, 2 x 1 CPU"]
    print(f"Ray start-up {ray_start:.1f} s (not in its wall time); per-trial overhead against the pool "
          f"{(ray - pool) / n:+.2f} s")
    print(f"summary: pool {seconds['sequential compare'] / pool:.2f}x sequential compare; "
          f"Ray {pool / ray:.2f}x the pool's throughput (within 15% means >= 0.87x)")


if __name__ == "__main__":
    main()
