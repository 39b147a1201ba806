"""bf16 autocast against fp32: same runs, same seeds; test accuracy and wall time of each.

    python benchmarks/precision_accuracy.py            # two settings x 3 seeds x 2 precisions (CPU: ~6 min)
    python benchmarks/precision_accuracy.py --quick    # tiny smoke run

precision="auto" trains under bf16 autocast on CUDA and on CPUs with AMX or AVX512-BF16. This shows what
that costs in accuracy and buys in time on the machine it runs on: each setting is trained once per
seed in fp32 and once in bf16 (same initial filters, same batches), and the paired differences of
test accuracy are summarized by their mean and 95% paired t interval (convcov_core.stats).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convcov_core import stats  # noqa: E402
from convcov_core.train import TrainConfig, load_training_data, resolve_device, train  # noqa: E402

SETTINGS = {
    "ConvMixer-64/6 k=9, 2 epochs, default init": dict(
        model="convmixer-64/6", kernel_size=9, epochs=2, init="default"),
    "ConvMixer-64/8 k=15, 1 epoch, Gaussian init, frozen filters": dict(
        model="convmixer-64/8", kernel_size=15, epochs=1, init="gaussian", freeze_filters=True),
}
QUICK_SETTINGS = {"ConvMixer-8/1 k=15, 4 steps": dict(model="convmixer-8/1", kernel_size=15, epochs=1,
                                                        max_steps=4, batch_size=32)}


def difference(bf16: list[float], fp32: list[float]) -> str:
    """bf16 - fp32 over seeds with the 95% paired t interval (stats.paired_verdict)."""
    verdict = stats.paired_verdict(bf16, fp32)
    if verdict.low is None:
        return f"{verdict.mean:+.2f}"
    return f"{verdict.mean:+.2f} [{verdict.low:+.2f}, {verdict.high:+.2f}]"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and few steps, for a smoke test")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dataset", default="mnist5k")
    args = parser.parse_args(argv)
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    device = resolve_device(args.device)
    settings = QUICK_SETTINGS if args.quick else SETTINGS
    print(f"{args.dataset} on {device}, seeds {', '.join(map(str, seeds))}; test accuracy in %, "
          "diff = bf16 - fp32 (same seed)")
    print(f"{'setting':<58} {'seed':>4} {'fp32 acc':>8} {'bf16 acc':>8} {'diff':>6} "
          f"{'fp32 s':>7} {'bf16 s':>7}")
    summaries, time_fp32, time_bf16 = [], 0.0, 0.0
    for label, overrides in settings.items():
        accuracies = {"fp32": [], "bf16": []}
        for seed in seeds:
            base = TrainConfig(dataset=args.dataset, patch_size=2, seed=seed, device=str(device), **overrides)
            if seed == seeds[0]:  # data loaded and cached, kernels warmed up, before any clock starts
                load_training_data(base)
                for precision in ("fp32", "bf16"):
                    train(base.replace(precision=precision, max_steps=1))
            fp32 = train(base.replace(precision="fp32"))
            bf16 = train(base.replace(precision="bf16"))
            for run in (fp32, bf16):
                if run.status != "ok":
                    raise SystemExit(f"{label}, seed {seed}, {run.precision}: {run.message}")
            diff = bf16.final["test_acc"] - fp32.final["test_acc"]
            accuracies["fp32"].append(fp32.final["test_acc"])
            accuracies["bf16"].append(bf16.final["test_acc"])
            time_fp32 += fp32.wall_time
            time_bf16 += bf16.wall_time
            print(f"{label:<58} {seed:>4} {fp32.final['test_acc']:>8.2f} {bf16.final['test_acc']:>8.2f} "
                  f"{diff:>+6.2f} {fp32.wall_time:>7.1f} {bf16.wall_time:>7.1f}", flush=True)
        summaries.append(f"{label.split(',')[0]} {difference(accuracies['bf16'], accuracies['fp32'])} points")
    print(f"summary: bf16 - fp32 test accuracy: {'; '.join(summaries)}; bf16 runs took "
          f"{time_fp32 / time_bf16:.2f}x less wall time on {device}")


if __name__ == "__main__":
    main()
