"""Ensembles: training images per second summed over N members trained as one grouped network
(convcov_core.ensemble.train_ensemble) against the same trials trained one after another by train().

    python benchmarks/ensemble_throughput.py                 # ConvMixer-64/8 k=15 (the Lab's default)
                                                             # and ConvMixer-256/8 k=5, N = 1, 2, 4, 8, 16
    python benchmarks/ensemble_throughput.py --device cuda   # the same on a GPU (CUDA-graph steps)
    python benchmarks/ensemble_throughput.py --vmap          # also: one step grouped vs torch.func.vmap
    python benchmarks/ensemble_throughput.py --quick         # tiny smoke run
    python benchmarks/ensemble_throughput.py --lab           # wall time of Training Lab comparisons
    python benchmarks/ensemble_throughput.py --steps-only    # one training step, grouped vs lone

For each N, N trials that differ in seed and init scheme (default and Gaussian in turn, filters
trained) and share everything else: one side trains each with train(), the other all of them with
train_ensemble() (in the groups its memory check allows; their sizes are printed). Images/s counts
the training steps after a warm-up (1 step on CPU; on accelerators the first 16-step read-back),
setup and evaluation excluded, summed over members: N x steps x batch over the seconds those steps
took, summed over runs (or groups); the last column is what a CIFAR-10-sized epoch (50,000 images)
of every member would take at the ensemble's rate. The CPU rows use 60 texture crops per class (600 training
images) so that evaluating each of the 31 runs stays short; the steps timed are the same either way.
Rounds alternate between the two sides and the best of each is kept (other work on a shared machine
only ever slows a round down).
--steps-only times one training step (forward, backward, AdamW) of N members grouped against one
member's step times N, both built and prepared by the code train_ensemble and train() run
(prepare_model, make_step), best of --rounds after a warm-up: no data loading, setup or
evaluation, so it stays short on a busy machine where the full runs above take many minutes.
--lab times whole comparisons as the Training Lab runs them (convcov_app.lab.plan_comparison, then
compare.compare: data loading, training, evaluation and covariances, all counted): its default setup
(ConvMixer-64/8, k = 15, frozen filters, default vs Gaussian, one epoch of mnist5k) with 10 seeds
trained together against the same setup with its default 2 seeds one after another.
--vmap times one training step (forward, backward, AdamW) of N members grouped as train_ensemble
runs it against torch.func.stack_module_state + vmap over functional_call, the other way to stack
networks, which must keep PyTorch's own depthwise backward (vmap cannot enter the swapped-convolution
autograd Function of convcov_core.depthwise).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convcov_core.compare import compare  # noqa: E402
from convcov_core.depthwise import SWAPPED_MIN_TAPS, use_fast_depthwise  # noqa: E402
from convcov_core.ensemble import Ensemble, group_compatible, member_losses, train_ensemble  # noqa: E402
from convcov_core.models import ConvMixer  # noqa: E402
from convcov_core.step import autocast, autocast_dtype  # noqa: E402
from convcov_core.train import (  # noqa: E402
    TrainConfig,
    build_model_for,
    load_training_data,
    resolve_device,
    train,
)
from convcov_core.train.model import prepare_model  # noqa: E402
from convcov_core.train.network import make_step  # noqa: E402

# (label, model, kernel, patch, dataset, dataset params, their changes on CPU)
MODELS = [
    ("ConvMixer-64/8 k=15 p=2 mnist5k", "convmixer-64/8", 15, 2, "mnist5k", {}, {}),
    ("ConvMixer-256/8 k=5 p=2 32x32x3", "convmixer-256/8", 5, 2, "textures", {"color": True, "test_per_class": 10},
     {"train_per_class": 60}),
]
QUICK_MODELS = [("ConvMixer-16/2 k=5 p=4 noisy-bars", "convmixer-16/2", 5, 4, "noisy-bars",
                 {"n_train": 64, "n_test": 32}, {})]
MEMBERS = (1, 2, 4, 8, 16)
QUICK_MEMBERS = (1, 2)
ACCELERATOR_READ_BACK = 16  # train()'s steps between loss read-backs off the CPU


def trials(spec, n: int, steps: int, batch: int, device: torch.device, precision: str) -> list[TrainConfig]:
    """n configs of one model that differ in seed and init scheme (default, gaussian, default, ...)."""
    _, model, k, p, dataset, params, cpu_params = spec
    params = {**params, **(cpu_params if device.type == "cpu" else {})}
    return [TrainConfig(dataset=dataset, dataset_params=params, model=model, kernel_size=k, patch_size=p,
                        epochs=1, max_steps=steps, batch_size=batch, device=str(device), precision=precision,
                        seed=seed, init=("default", "gaussian")[seed % 2]) for seed in range(n)]


class StepClock:
    """A callback that stamps every step event with the time it came, per run_index."""

    def __init__(self):
        self.stamps: dict[int, list[float]] = {}

    def __call__(self, event) -> None:
        if event.kind == "step":
            self.stamps.setdefault(event.run_index, []).append(time.perf_counter())

    def seconds(self, run_index: int, warmup: int) -> float:
        """Seconds that run's steps after the warm-up took."""
        stamps = self.stamps[run_index]
        return stamps[-1] - stamps[warmup - 1]


def one_after_another(configs, warmup: int) -> float:
    """Seconds of the timed steps of every config trained alone by train(), summed."""
    clock = StepClock()
    for i, config in enumerate(configs):
        assert train(config, clock, run_index=i).status == "ok"
    return sum(clock.seconds(i, warmup) for i in range(len(configs)))


def together(configs, groups: list[list[int]], warmup: int) -> float:
    """Seconds of the timed steps of train_ensemble(configs), summed over its groups."""
    clock = StepClock()
    assert all(r.status == "ok" for r in train_ensemble(configs, clock))
    return sum(clock.seconds(group[0], warmup) for group in groups)


def vmap_vs_grouped(spec, n: int, batch: int, device: torch.device, precision: str, rounds: int):
    """Seconds of one training step of n members: (grouped as train_ensemble runs it, vmapped)."""
    _, model, k, p, dataset, params, _ = spec
    info = load_training_data(TrainConfig(dataset=dataset, dataset_params=params))[4]
    dim, depth = (int(v) for v in model.removeprefix("convmixer-").split("/"))
    members = [ConvMixer(dim, depth, k, p, len(info.classes), info.in_chans).to(device) for _ in range(n)]
    dtype = autocast_dtype(precision, device)
    x = torch.randn(n, batch, info.in_chans, info.image_size, info.image_size, device=device)
    y = torch.randint(0, len(info.classes), (n, batch), device=device)

    layout = torch.channels_last if device.type == "cpu" else torch.contiguous_format  # as train() on CPU
    grouped = Ensemble.of(members).to(device, memory_format=layout).train()
    if device.type == "cpu":
        use_fast_depthwise(grouped, min_taps=1 if dtype == torch.bfloat16 else SWAPPED_MIN_TAPS)
    grouped_x = x.transpose(0, 1).flatten(1, 2).contiguous(memory_format=layout)
    grouped_opt = torch.optim.AdamW(grouped.parameters(), lr=1e-3)

    def grouped_step():
        with autocast(device, dtype):
            objective = member_losses(grouped(grouped_x), y.T, 0.0)[0]
        grouped_opt.zero_grad()
        objective.backward()
        grouped_opt.step()

    params, buffers = torch.func.stack_module_state(members)
    skeleton = copy.deepcopy(members[0]).to("meta")
    vmap_opt = torch.optim.AdamW(list(params.values()), lr=1e-3)

    def member_loss(member_params, member_buffers, images, labels):
        return F.cross_entropy(torch.func.functional_call(skeleton, (member_params, member_buffers), (images,)), labels)

    def vmap_step():
        with autocast(device, dtype):
            objective = torch.vmap(member_loss)(params, buffers, x, y).sum()
        vmap_opt.zero_grad()
        objective.backward()
        vmap_opt.step()

    return best_step_times([grouped_step, vmap_step], rounds, device)


def best_step_times(steps, rounds: int, device: torch.device) -> tuple[float, ...]:
    """The best of `rounds` timings of each step after a warm-up, the steps taking turns (a busy
    machine then slows them alike)."""
    for step in steps:
        step()  # warm-up
    times = [[] for _ in steps]
    for _ in range(rounds):
        for step, seconds in zip(steps, times):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - start)
    return tuple(min(seconds) for seconds in times)


def one_step_seconds(spec, n: int, batch: int, device: torch.device, precision: str, rounds: int):
    """Seconds of one training step: (one member alone, n members grouped), as train() and
    train_ensemble() prepare and step them."""
    config = trials(spec, 1, 1, batch, device, precision)[0]
    info = load_training_data(config)[4]
    members = [build_model_for(config.replace(seed=seed), info) for seed in range(n)]
    grouped_info = dataclasses.replace(info, in_chans=n * info.in_chans)
    grouped, dtype, channels_last = prepare_model(config, Ensemble.of(members), grouped_info, device)
    lone = prepare_model(config, members[0], info, device)[0]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, n * info.in_chans, info.image_size, info.image_size, device=device)
    y = torch.randint(0, len(info.classes), (batch, n), device=device)
    grouped_step = make_step(config, grouped, device, dtype, member_losses)
    lone_step = make_step(config, lone, device, dtype)
    lone_x = x[:, :info.in_chans].contiguous(memory_format=layout)
    grouped_x = x.contiguous(memory_format=layout)
    return best_step_times([lambda: lone_step(lone_x, y[:, 0], config.lr),
                            lambda: grouped_step(grouped_x, y, config.lr)], rounds, device)


def steps_only(specs, members, batch: int, device: torch.device, precision: str, rounds: int) -> None:
    """Print one row per model and N: a lone step, a grouped step, and the ratio of images/s."""
    print(f"{'model':<32} {'N':>3} {'lone step ms':>13} {'grouped step ms':>16} {'lone img/s':>11} "
          f"{'ensemble img/s':>15} {'ratio':>6}")
    for spec in specs:
        for n in members:
            lone_s, grouped_s = one_step_seconds(spec, n, batch, device, precision, rounds)
            print(f"{spec[0]:<32} {n:3d} {lone_s * 1000:13.0f} {grouped_s * 1000:16.0f} {batch / lone_s:11.1f} "
                  f"{n * batch / grouped_s:15.1f} {n * lone_s / grouped_s:5.2f}x  (load {os.getloadavg()[0]:.1f})",
                  flush=True)


def lab_comparisons(seeds_together: int, seeds_alone: int) -> None:
    """Print the wall time of the Lab's default comparison with seeds_together seeds trained as one
    ensemble and with seeds_alone seeds one after another (compare, as the Lab's job runs it)."""
    from convcov_app import lab

    for n_seeds, ensemble in ((seeds_alone, False), (seeds_together, True)):
        plan = lab.plan_comparison(lab.LabSetup(n_seeds=n_seeds, ensemble=ensemble))
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        cmp = compare(plan.base, plan.variants, plan.seeds, references=plan.references, ensemble=ensemble)
        means = ", ".join(f"{r['variant']} {r['mean']:.1f} %" for r in cmp.rows)
        print(f"Lab default, {n_seeds} seeds ({plan.n_runs} runs), {'ensemble' if ensemble else 'one after another'}: "
              f"{cmp.wall_time:.1f} s ({means}; load average at start {load:.1f})", flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, N = 1 and 2, for a smoke test")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--members", default=None, help="comma-separated N (default 1,2,4,8,16)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per run (default: 3 on CPU, 15 on accelerators)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default="", help="run only models whose label contains this text")
    parser.add_argument("--vmap", action="store_true", help="also time one step grouped vs torch.func.vmap")
    parser.add_argument("--steps-only", action="store_true",
                        help="time one training step grouped vs lone instead of whole runs")
    parser.add_argument("--lab", action="store_true",
                        help="only time the Lab's default comparison: 10 seeds together vs 2 one after another")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.lab:
        lab_comparisons(10, 2)
        return
    device = resolve_device(args.device)
    cpu = device.type == "cpu"
    warmup = 1 if cpu else ACCELERATOR_READ_BACK
    steps = 1 if args.quick else args.steps or (3 if cpu else ACCELERATOR_READ_BACK - 1)
    batch = 16 if args.quick else args.batch_size
    members = [int(n) for n in args.members.split(",")] if args.members else (QUICK_MEMBERS if args.quick else MEMBERS)
    specs = [s for s in (QUICK_MODELS if args.quick else MODELS) if args.only in s[0]]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device: {name}, torch {torch.__version__}, threads: {torch.get_num_threads()}, precision: "
          f"{args.precision}, batch: {batch}, {warmup} warm-up + {steps} timed steps per run, best of "
          f"{args.rounds} rounds, load average at start: {load:.1f}")
    if args.steps_only:
        steps_only(specs, members, batch, device, args.precision, max(2, args.rounds))
        return
    print(f"{'model':<32} {'N':>3} {'groups':<12} {'one after another':>18} {'ensemble':>9} {'ratio':>6} "
          f"{'ensemble s per 50k-image epoch each':>36}")
    summaries = []
    for spec in specs:
        ratios = []
        for n in members:
            configs = trials(spec, n, warmup + steps, batch, device, args.precision)
            groups = group_compatible(configs)
            alone = grouped = float("inf")
            for _ in range(args.rounds):  # alternate, keep the best of each
                alone = min(alone, one_after_another(configs, warmup))
                grouped = min(grouped, together(configs, groups, warmup))
            images = n * steps * batch
            sizes = "+".join(str(len(g)) for g in groups)
            ratios.append((n, alone / grouped))
            print(f"{spec[0]:<32} {n:3d} {sizes:<12} {images / alone:18.1f} {images / grouped:9.1f} "
                  f"{alone / grouped:5.2f}x {50_000 * n * grouped / images:36.1f}", flush=True)
        if args.vmap:
            n = max(m for m in members if m <= 8)
            grouped_s, vmap_s = vmap_vs_grouped(spec, n, batch, device, args.precision, max(2, args.rounds))
            print(f"{spec[0]:<32} {n:3d} one step: grouped {grouped_s * 1000:.0f} ms, vmap {vmap_s * 1000:.0f} ms "
                  f"({vmap_s / grouped_s:.2f}x)", flush=True)
        summaries.append(f"{spec[0]}: " + ", ".join(f"{r:.2f}x at N = {n}" for n, r in ratios))
    print(f"summary: ensemble vs one after another on {name} (precision {args.precision}), training images/s "
          f"summed over members: {'; '.join(summaries)}")


if __name__ == "__main__":
    main()
