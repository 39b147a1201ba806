"""CPU threads beside other work: the Training Lab's default comparison on the threads train chooses
(convcov_core/train/threads.py: one per core that other work leaves free) against torch's own choice
(every core), on the machine as it is and then with --busy processes spinning beside it (other work,
as other users' jobs on a shared machine), A B B A in each.

    python benchmarks/threads_under_load.py                  # 3 busy processes, 10 steps a run
    python benchmarks/threads_under_load.py --busy 6 --max-steps 20
    python benchmarks/threads_under_load.py --quick          # tiny smoke run

The quiet rounds begin once the 1-minute load average has fallen below QUIET_LOAD (or after LOAD_WAIT_S);
the busy processes start once they are done and run until the loaded rounds end, which begin when the
load average has risen to 0.8 x --busy (or after LOAD_WAIT_S). The load average and the
threads chosen are printed beside each timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convcov_app import lab  # noqa: E402
from convcov_core import compare  # noqa: E402
from convcov_core.train import TrainConfig, threads  # noqa: E402

QUICK = TrainConfig(model="convmixer-16/2", kernel_size=5, patch_size=4, batch_size=16, epochs=1, max_steps=3)
LOAD_WAIT_S = 180
QUIET_LOAD = 0.3


def lab_plan(quick: bool, max_steps: int, n_threads: int | None) -> lab.ComparisonPlan:
    """The Lab's default comparison, one seed, max_steps steps a run, on n_threads (None: train's choice)."""
    setup = lab.LabSetup(training=QUICK, n_seeds=1) if quick else lab.PRESETS[lab.QUICK_CPU].setup
    training = setup.training.replace(max_steps=QUICK.max_steps if quick else max_steps, threads=n_threads)
    return lab.plan_comparison(dataclasses.replace(setup, training=training, n_seeds=1))


def timed(plan: lab.ComparisonPlan) -> float:
    start = time.perf_counter()
    compare.compare(plan.base, plan.variants, plan.seeds, references=plan.references, ensemble=plan.ensemble)
    return time.perf_counter() - start


def rounds(quick: bool, max_steps: int, torch_threads: int, label: str) -> dict[str, float]:
    """A B B A: train's choice ("chosen") and torch's threads ("torch"); mean seconds of each."""
    times: dict[str, list[float]] = {"chosen": [], "torch": []}
    for form in ("chosen", "torch", "torch", "chosen"):
        n_threads = None if form == "chosen" else torch_threads
        picked = threads.cpu_threads(torch_threads) if n_threads is None else n_threads
        load = os.getloadavg()[0]
        times[form].append(timed(lab_plan(quick, max_steps, n_threads)))
        print(f"  {label:<8} {form:<8} {picked} thread(s) {times[form][-1]:8.1f} s  load {load:.1f}", flush=True)
    return {form: sum(t) / len(t) for form, t in times.items()}


def wait_for_load(reached, wait_s: float) -> None:
    """Until reached(1-minute load average), at most wait_s seconds."""
    deadline = time.monotonic() + wait_s
    while not reached(os.getloadavg()[0]) and time.monotonic() < deadline:
        time.sleep(2)


def start_busy(n: int) -> list[subprocess.Popen]:
    """n processes that spin on one core each, each in a process group of its own."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(n)]


def stop_busy(busy: list[subprocess.Popen]) -> None:
    for proc in busy:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=3, help="busy processes beside the loaded rounds")
    parser.add_argument("--max-steps", type=int, default=10, help="steps a run (the evaluation follows)")
    parser.add_argument("--quick", action="store_true", help="a tiny model and no wait for the load")
    args = parser.parse_args(argv)
    torch_threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch's threads {torch_threads}")
    wait_s = 0 if args.quick else LOAD_WAIT_S
    timed(lab_plan(True, args.max_steps, None))  # warm-up: data, imports and allocations, untimed
    wait_for_load(lambda load: load < QUIET_LOAD, wait_s)
    quiet = rounds(args.quick, args.max_steps, torch_threads, "quiet")
    busy = start_busy(args.busy)
    try:
        wait_for_load(lambda load: load >= 0.8 * args.busy, wait_s)
        loaded = rounds(args.quick, args.max_steps, torch_threads, "busy")
    finally:
        stop_busy(busy)
    print(f"summary: the Lab's default comparison (one seed), train's threads against torch's "
          f"{torch_threads}: quiet {quiet['chosen']:.1f} vs {quiet['torch']:.1f} s "
          f"({quiet['torch'] / quiet['chosen']:.2f}x); beside {args.busy} busy processes "
          f"{loaded['chosen']:.1f} vs {loaded['torch']:.1f} s ({loaded['torch'] / loaded['chosen']:.2f}x)")


if __name__ == "__main__":
    main()
