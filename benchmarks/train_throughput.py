"""Training images/second: convcov_core.train against the loop of the public ConvMixer CIFAR-10 script.

    python benchmarks/train_throughput.py             # ConvMixer-256/8 k=5 and ConvMixer-64/6 k=9
                                                      # (precision "auto", and fp32 where auto is bf16)
    python benchmarks/train_throughput.py --ablation  # also: which fast path buys what
    python benchmarks/train_throughput.py --compile   # also: convcov_core.train with torch.compile
    python benchmarks/train_throughput.py --quick     # tiny smoke run

The reference is written the way locuslab/convmixer-cifar10's train.py does it: a plain
nn.Sequential ConvMixer, contiguous fp32, a torch DataLoader (shuffle, no workers) over the same
in-memory tensors, AdamW with default options, the lr set per step from np.interp, and the script's
two .item() reads per step. Both sides train the same model on the same data with the same batch
size on the same device; images/s counts steps after a warm-up, evaluation excluded. Rounds
alternate between the two and the best round of each is kept (other work on a shared machine only
ever slows a round down).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn as nn

from convcov_core.data import load_dataset
from convcov_core.models import Residual, convmixer_spec  # Residual: fn(x) + x, as in the script
from convcov_core.train import TrainConfig, resolve_device, train

# (label, dim, depth, kernel, patch, dataset, dataset params, timed steps on CPU): 32x32 colour
# (textures crops, CIFAR-10's shape, embedded so the benchmark runs offline) and 28x28 grayscale
MODELS = [
    ("ConvMixer-256/8 k=5 p=2 32x32x3", 256, 8, 5, 2, "textures", {"color": True}, 6),
    ("ConvMixer-64/6 k=9 p=2 28x28x1", 64, 6, 9, 2, "mnist5k", {}, 16),
]
QUICK_MODELS = [("ConvMixer-16/2 k=5 p=2 28x28x1", 16, 2, 5, 2, "mnist5k", {}, 3)]
GPU_STEPS = 64  # a multiple of train()'s 16-step read-back


def ReferenceConvMixer(dim, depth, kernel_size=5, patch_size=2, n_classes=10, in_chans=3):
    """The ConvMixer CIFAR-10 script's model (in_chans added so grayscale data fits), kept a plain
    nn.Sequential as the script writes it rather than convcov_core.models.ConvMixer's named layout."""
    return nn.Sequential(
        nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size),
        nn.GELU(),
        nn.BatchNorm2d(dim),
        *[nn.Sequential(
            Residual(nn.Sequential(
                nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"),
                nn.GELU(),
                nn.BatchNorm2d(dim)
            )),
            nn.Conv2d(dim, dim, kernel_size=1),
            nn.GELU(),
            nn.BatchNorm2d(dim)
        ) for _ in range(depth)],
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(dim, n_classes)
    )


def reference_images_per_s(spec, data, steps, warmup, batch_size, device, *, dataloader=True,
                           channels_last=False, adamw_kwargs=None) -> float:
    """The script's training loop for `steps` steps; images/s over the steps after `warmup`.
    The keyword switches turn on one fast path at a time for --ablation."""
    _, dim, depth, k, p, *_ = spec
    train_x, train_y, info = data
    torch.manual_seed(0)
    model = ReferenceConvMixer(dim, depth, k, p, len(info.classes), info.in_chans).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01, **(adamw_kwargs or {}))
    criterion = nn.CrossEntropyLoss()
    lr_schedule = lambda t: np.interp([t], [0, 0.4, 0.8, 1], [0, 0.01, 0.01 / 20, 0])[0]  # noqa: E731
    if dataloader:
        batches = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train_x, train_y),
                                              batch_size=batch_size, shuffle=True, num_workers=0)
    else:
        x_dev, y_dev = train_x.to(device), train_y.to(device)
        if channels_last:
            x_dev = x_dev.contiguous(memory_format=torch.channels_last)
        batches = [(x_dev[i:i + batch_size], y_dev[i:i + batch_size])
                   for i in range(0, len(y_dev) - batch_size + 1, batch_size)]
    stamps, step = [], 0
    model.train()
    while step < steps:
        for X, y in batches:
            X, y = X.to(device), y.to(device)
            if channels_last:
                X = X.contiguous(memory_format=torch.channels_last)
            opt.param_groups[0].update(lr=lr_schedule((step + 1) / steps))
            opt.zero_grad()
            output = model(X)
            loss = criterion(output, y)
            loss.backward()
            opt.step()
            loss.item()
            (output.max(1)[1] == y).sum().item()
            stamps.append(time.perf_counter())
            step += 1
            if step == steps:
                break
    return (steps - warmup) * batch_size / (stamps[-1] - stamps[warmup - 1])


def ours_images_per_s(spec, steps, warmup, batch_size, device, *, compile=False,
                      precision="auto") -> tuple[float, float | None, str]:
    """convcov_core.train for `steps` steps: images/s from the step events after `warmup`, the
    compile time (first step) when `compile` is set, and the precision it trained in."""
    _, dim, depth, k, p, dataset, params, _ = spec
    stamps = []
    config = TrainConfig(dataset=dataset, dataset_params=params, model=convmixer_spec(dim, depth),
                         kernel_size=k, patch_size=p, epochs=100, max_steps=steps, batch_size=batch_size,
                         device=str(device), compile=compile, precision=precision)
    result = train(config, lambda e: stamps.append(time.perf_counter()) if e.kind == "step" else None)
    assert result.status == "ok", result.message
    ips = (steps - warmup) * batch_size / (stamps[-1] - stamps[warmup - 1])
    return ips, result.compile_seconds, result.precision


def best_of(rounds: int, fn) -> float:
    return max(fn() for _ in range(rounds))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and few steps, for a smoke test")
    parser.add_argument("--ablation", action="store_true", help="also time the reference with each fast path")
    parser.add_argument("--compile", action="store_true",
                        help="also time convcov_core.train with torch.compile (compile time printed)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per round (default: by model and device)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for both loops")
    parser.add_argument("--only", default="", help="run only models whose label contains this text")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m for m in (QUICK_MODELS if args.quick else MODELS) if args.only in m[0]]
    # On accelerators train() reads losses back every 16 steps, so its step events come in bursts:
    # a warm-up of 16 steps puts the first timestamp right after a read-back.
    warmup = 1 if args.quick else (2 if device.type == "cpu" else 16)
    batch = 16 if args.quick else args.batch_size
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device: {name}, torch {torch.__version__}, threads: {torch.get_num_threads()}, batch: {batch}, "
          f"{warmup} warm-up steps, best of {args.rounds} rounds, load average at start: {load:.1f}")
    print(f"{'model':<32} {'loop':<40} {'steps':>5} {'images/s':>9} {'s / 50k images':>15} {'vs ref':>7}")
    ratios, fp32_ratios = [], []
    for spec in models:
        steps = warmup + (args.steps or (spec[7] if device.type == "cpu" else GPU_STEPS))
        train_x, train_y, _, _, info = load_dataset(spec[5], **spec[6])
        data = (train_x, train_y, info)
        ours = ours_fp32 = ref = 0.0
        for _ in range(args.rounds):  # alternate, keep the best of each
            ref = max(ref, reference_images_per_s(spec, data, steps, warmup, batch, device))
            ips, _, precision = ours_images_per_s(spec, steps, warmup, batch, device)
            ours = max(ours, ips)
            if precision != "fp32":  # also the fp32 engine, to show what the precision buys
                ours_fp32 = max(ours_fp32, ours_images_per_s(spec, steps, warmup, batch, device,
                                                             precision="fp32")[0])
        rows = [("reference (ConvMixer CIFAR script)", ref), (f"convcov_core.train ({precision})", ours)]
        if ours_fp32:
            rows.append(("convcov_core.train (fp32)", ours_fp32))
            fp32_ratios.append(ours_fp32 / ref)
        if args.compile:
            compiled, compile_s, precision = ours_images_per_s(spec, steps, warmup, batch, device, compile=True)
            rows.append((f"convcov_core.train ({precision}) + compile ({compile_s:.0f} s)", compiled))
        if args.ablation:
            variants = [
                ("ref + tensors on device, no DataLoader", dict(dataloader=False)),
                ("ref + channels_last", dict(channels_last=True)),
                ("ref + AdamW foreach", dict(adamw_kwargs={"foreach": True})),
                ("ref + AdamW fused", dict(adamw_kwargs={"fused": True})),
            ]
            for label, kw in variants:
                rows.append((label, best_of(args.rounds, lambda kw=kw: reference_images_per_s(
                    spec, data, steps, warmup, batch, device, **kw))))
        for label, ips in rows:
            print(f"{spec[0]:<32} {label:<40} {steps - warmup:5d} {ips:9.1f} {50_000 / ips:15.1f} "
                  f"{ips / ref:6.2f}x", flush=True)
        ratios.append((spec[0], ours / ref))
    summary = ", ".join(f"{label}: {r:.2f}x" for label, r in ratios)
    fp32 = (f"; in fp32: {', '.join(f'{r:.2f}x' for r in fp32_ratios)}" if fp32_ratios else "")
    print(f"summary: convcov_core.train (precision {precision}) vs the ConvMixer CIFAR-10 reference loop "
          f"(fp32) on {name}: {summary} (geometric mean {np.exp(np.mean(np.log([r for _, r in ratios]))):.2f}x)"
          f"{fp32}")


if __name__ == "__main__":
    main()
