"""The Training Lab's presets as a visitor waits for them, against what the Lab predicts before Run.

    python benchmarks/lab_presets.py              # every CPU preset, as the Lab runs it
    python benchmarks/lab_presets.py --seeds 1    # one seed of each (a CPU runs them one after another)
    python benchmarks/lab_presets.py --ab --max-steps 8   # the learned preset (15 x 15 filters) with
                                                          # its wide bf16 depthwise convs in fp32 (now)
                                                          # and on NCHW bf16 copies (before)
    python benchmarks/lab_presets.py --quick      # tiny smoke run

Each preset's comparison is timed as the Lab's job runs it (compare.compare on lab.plan_comparison,
the learned preset on the bundled example's covariances), after the two predictions the Lab offers:
Estimate time (lab.estimate_seconds: a few steps and one evaluation timed now; what it took is printed
too) and the line under the plan (throughput.stored_estimate over the runs this benchmark stored
before, in a throwaway run store, as for a visitor who ran the presets above it). Each row prints
both as predicted / actual. The 1-minute load average is printed beside each row.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _depthwise_before import bf16_nchw_conv  # noqa: E402
from convcov_app import lab  # noqa: E402
from convcov_core import compare, depthwise, examples, throughput  # noqa: E402
from convcov_core.runs import RunStore  # noqa: E402
from convcov_core.train import TrainConfig  # noqa: E402

QUICK = TrainConfig(model="convmixer-16/2", kernel_size=5, patch_size=4, batch_size=16, epochs=1, max_steps=3)
CPU_PRESETS = [lab.QUICK_CPU, lab.TRAINED_SHORT, lab.LEARNED_FROZEN, lab.PEER_FROZEN, lab.VIT_MIMETIC,
               lab.NIFF_TRAINED]


def setups(quick: bool, seeds: int | None) -> dict[str, lab.LabSetup]:
    """{name: setup} of the presets timed (--quick: two tiny ones), with `seeds` seeds when given."""
    if quick:
        chosen = {"tiny frozen": lab.LabSetup(training=QUICK, n_seeds=1),
                  "tiny learned": lab.LabSetup(training=QUICK, inits=("default", "learned"), n_seeds=1)}
    else:
        chosen = {name: lab.PRESETS[name].setup for name in CPU_PRESETS}
    return {name: dataclasses.replace(setup, n_seeds=seeds or setup.n_seeds) for name, setup in chosen.items()}


def plan_for(setup: lab.LabSetup) -> lab.ComparisonPlan:
    """The Lab's plan; a learned scheme reads the bundled example's covariances, as the preset offers."""
    learned = examples.load_example().covariances if "learned" in setup.inits else None
    return lab.plan_comparison(setup, learned)


def run_plan(plan: lab.ComparisonPlan, store: RunStore | None) -> float:
    """Wall seconds of the comparison as the Lab's job trains it; its runs saved to `store` when given."""
    start = time.perf_counter()
    compare.compare(plan.base, plan.variants, plan.seeds, references=plan.references, ensemble=plan.ensemble,
                    on_result=store.save if store else None)
    return time.perf_counter() - start


def preset_row(name: str, plan: lab.ComparisonPlan, store: RunStore) -> tuple[str, float, float | None]:
    """One preset: Estimate time, the stored-runs estimate, then the run itself; (row, estimate/actual,
    stored/actual or None)."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    timed = lab.estimate_seconds(plan)
    timing_cost = time.perf_counter() - start
    stored = throughput.stored_estimate(plan.run_configs(), store.timings())
    actual = run_plan(plan, store)
    tflop = lab.plan_work(plan)[1]
    stored_text = (f"{stored.seconds:7.0f} s ({stored.seconds / actual:4.2f}x, "
                   f"{'same shape' if stored.flop_rate is None else 'FLOP rate'})" if stored else "   none stored")
    row = (f"{name[:44]:<44} {plan.n_runs:>4} {tflop:6.2f} {actual:8.1f} {tflop * 1e3 / actual:6.1f} "
           f"{timed:7.0f} s ({timed / actual:4.2f}x, took {timing_cost:4.1f} s)  {stored_text}  "
           f"load {load:.1f} -> {os.getloadavg()[0]:.1f}")
    return row, timed / actual, stored.seconds / actual if stored else None


def wide_filter_ab(quick: bool, max_steps: int | None) -> str:
    """The learned preset's comparison (one seed, `max_steps` steps a run, evaluation included; with
    --quick a tiny one) with its depthwise convs as depthwise._depthwise_conv runs them (bf16 filters
    wider than 13 in fp32 on channels_last images: now) and in bf16 on NCHW copies (before), A B B A."""
    setup = setups(quick, 1)["tiny learned" if quick else lab.LEARNED_FROZEN]
    setup = dataclasses.replace(setup, training=setup.training.replace(max_steps=max_steps))
    plan = plan_for(setup)
    forms = {"now": depthwise._depthwise_conv, "before": bf16_nchw_conv}
    times: dict[str, list[float]] = {"now": [], "before": []}
    for label in ("now", "before", "before", "now"):
        depthwise._depthwise_conv = forms[label]
        try:
            times[label].append(run_plan(plan, None))
        finally:
            depthwise._depthwise_conv = forms["now"]
        print(f"  {label:<6} {times[label][-1]:8.1f} s  load {os.getloadavg()[0]:.1f}", flush=True)
    mean = {label: sum(t) / len(t) for label, t in times.items()}
    steps = f"{max_steps} steps and the evaluation" if max_steps else "one epoch"
    return (f"summary: {plan.n_runs} runs of the learned preset ({plan.base.kernel_size} x "
            f"{plan.base.kernel_size} filters, one seed, {steps} each): {mean['before']:.1f} s with its bf16 "
            f"depthwise convs on NCHW copies (before), {mean['now']:.1f} s in fp32 on channels_last (now): "
            f"{mean['before'] / mean['now']:.1f}x")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds of each preset (default: the preset's own)")
    parser.add_argument("--only", default="", help="only the presets whose name contains this text")
    parser.add_argument("--ab", action="store_true", help="instead: the learned preset with and without "
                        "depthwise.py's fp32 rule for wide bf16 filters")
    parser.add_argument("--max-steps", type=int, default=None, help="with --ab: steps a run (default: one epoch)")
    parser.add_argument("--quick", action="store_true", help="two tiny comparisons, for a smoke test")
    args = parser.parse_args(argv)
    if args.ab:
        print(wide_filter_ab(args.quick, args.max_steps))
        return
    print(f"{'preset':<44} {'runs':>4} {'TFLOP':>6} {'wall s':>8} {'GFLOP/s':>6} {'Estimate time':>32}  "
          "stored-runs estimate")
    ratios = []
    with tempfile.TemporaryDirectory() as home:
        store = RunStore(Path(home) / "runs.db")
        for name, setup in setups(args.quick, args.seeds).items():
            if args.only in name:
                row, timed, stored = preset_row(name, plan_for(setup), store)
                print(row, flush=True)
                ratios.append((timed, stored))
    stored_ratios = [s for _, s in ratios if s is not None]
    print(f"summary: {len(ratios)} presets; Estimate time predicted {sum(t for t, _ in ratios) / len(ratios):.2f}x "
          "their wall time on average, the stored-runs line "
          + (f"{sum(stored_ratios) / len(stored_ratios):.2f}x (over {len(stored_ratios)} with runs stored before)"
             if stored_ratios else "nothing (no run stored before)"))


if __name__ == "__main__":
    main()
