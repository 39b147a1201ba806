"""Peak memory and time of patch_agop (M = W^T G W from output gradients) versus unfolding patches.

The unfolding approach is the obvious alternative (and the seed's workaround): unfold the layer
input into patches as leaf tensors, rebuild the layer output from them, backprop to the patches and
sum outer products of the patch gradients. Both run on the same model, layer, batch and outputs.

Memory, stated honestly:
- CUDA: torch.cuda.max_memory_allocated during the call minus the memory allocated before it.
- CPU: each method runs in a fresh subprocess; the number is the growth of the process's peak
  resident set size (ru_maxrss) during the call, measured after the model and batch are built and
  a forward and backward pass on two inputs has warmed up the kernels. It counts what the
  allocator really took from the OS.
Time: best of --repeats wall-clock runs (the first run is the memory run).

    python benchmarks/agop_memory.py            # full run (about a minute on 2 CPU cores)
    python benchmarks/agop_memory.py --quick    # tiny smoke run
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convcov_core.analysis import patch_agop  # noqa: E402
from convcov_core.models import Residual  # noqa: E402

METHODS = ("patch_agop", "unfold")


# ---------------------------------------------------------------------------------------------
# Models: a plain CNN (regular 3x3 conv) and a ConvMixer (depthwise 9x9 conv)


def plain_cnn(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, 10),
    )


def conv_mixer(dim: int, depth: int, kernel_size: int) -> nn.Sequential:
    def mixer_layer():
        depthwise = nn.Conv2d(dim, dim, kernel_size, groups=dim, padding=kernel_size // 2)
        return nn.Sequential(
            Residual(nn.Sequential(depthwise, nn.GELU(), nn.BatchNorm2d(dim))),
            nn.Conv2d(dim, dim, 1),
            nn.GELU(),
            nn.BatchNorm2d(dim),
        )

    return nn.Sequential(
        nn.Conv2d(3, dim, 2, stride=2),
        nn.GELU(),
        nn.BatchNorm2d(dim),
        *[mixer_layer() for _ in range(depth)],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(dim, 10),
    )


def configs(quick: bool) -> dict[str, dict]:
    """name -> model builder arguments, layer, batch and image size."""
    if quick:
        return {
            "plain CNN 3x3": dict(model="plain", width=8, layer="2", batch=4, image=16),
            "ConvMixer depthwise 9x9": dict(
                model="mixer", dim=16, depth=1, kernel=9, layer="3.0.fn.0", batch=4, image=16
            ),
        }
    return {
        "plain CNN 3x3": dict(model="plain", width=64, layer="2", batch=8, image=32),
        "ConvMixer depthwise 9x9": dict(
            model="mixer", dim=128, depth=2, kernel=9, layer="3.0.fn.0", batch=8, image=32
        ),
    }


def build(config: dict, device: torch.device) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if config["model"] == "plain":
        model = plain_cnn(config["width"])
    else:
        model = conv_mixer(config["dim"], config["depth"], config["kernel"])
    model = model.to(device).eval()
    inputs = torch.randn(config["batch"], 3, config["image"], config["image"], device=device)
    return model, inputs


# ---------------------------------------------------------------------------------------------
# The unfolding approach


def unfolded_patch_agop(model: nn.Module, layer_name: str, inputs: torch.Tensor, outputs: str):
    """Patch-AGOP by unfolding the layer input into leaf patches (one batch, eval mode)."""
    conv = dict(model.named_modules())[layer_name]
    depthwise = conv.groups > 1
    k2 = conv.kernel_size[0] * conv.kernel_size[1]
    leaves = []

    def rebuild_from_patches(module, args, out):
        patches = F.unfold(
            args[0].detach(),
            module.kernel_size,
            dilation=module.dilation,
            padding=module.padding,
            stride=module.stride,
        ).requires_grad_(True)
        leaves.append(patches)
        batch, positions = patches.shape[0], patches.shape[-1]
        if depthwise:
            weight = module.weight.reshape(module.in_channels, -1, k2)
            per_channel = patches.reshape(batch, module.in_channels, k2, positions)
            z = torch.einsum("cmk,bckl->bcml", weight, per_channel)
        else:
            z = module.weight.reshape(module.out_channels, -1) @ patches
        z = z.reshape(out.shape)
        return z if module.bias is None else z + module.bias.reshape(1, -1, 1, 1)

    handle = conv.register_forward_hook(rebuild_from_patches)
    try:
        out = model(inputs)
    finally:
        handle.remove()
    (patches,) = leaves
    if outputs == "all":
        scalars = [out[:, k].sum() for k in range(out.shape[1])]
    else:
        scalars = [out.gather(1, out.detach().argmax(dim=1, keepdim=True)).sum()]
    total = 0
    for i, scalar in enumerate(scalars):
        (grad,) = torch.autograd.grad(scalar, patches, retain_graph=i + 1 < len(scalars))
        if depthwise:
            grad = grad.reshape(grad.shape[0], conv.in_channels, k2, -1)
            total = total + torch.einsum("bckl,bcjl->kj", grad, grad).double() / conv.in_channels
        else:
            grad = grad.transpose(0, 1).reshape(grad.shape[1], -1)
            total = total + (grad @ grad.T).double()
    return (total / inputs.shape[0]).cpu()


def run_method(method: str, model: nn.Module, layer: str, inputs: torch.Tensor, outputs: str):
    if method == "patch_agop":
        return patch_agop(model, layer, inputs, outputs=outputs, batch_size=inputs.shape[0])
    return unfolded_patch_agop(model, layer, inputs, outputs)


# ---------------------------------------------------------------------------------------------
# Measurement


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    name: str, method: str, device: torch.device, outputs: str, repeats: int, quick: bool, save: Path
) -> dict:
    """Peak extra memory (bytes) and best time (s) of one method in this process; saves its AGOP."""
    config = configs(quick)[name]
    model, inputs = build(config, device)
    warm_up = inputs[:2].clone().requires_grad_(True)  # load forward and backward kernels
    torch.autograd.grad(model(warm_up).sum(), warm_up)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        agop = run_method(method, model, config["layer"], inputs, outputs)
        synchronize(device)
        times.append(time.perf_counter() - start)
        if len(times) == 1:
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device) - before
            else:
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    torch.save(agop, save)
    return {"peak_bytes": peak, "seconds": min(times)}


def measure_in_subprocess(name, method, device, outputs, repeats, quick, save: Path) -> dict:
    command = [sys.executable, __file__, "--worker", name, method, "--device", str(device)]
    command += ["--outputs", outputs, "--repeats", str(repeats), "--save", str(save)]
    if quick:
        command.append("--quick")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker for {name} / {method} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def patch_description(config: dict) -> str:
    model, _ = build(config, torch.device("cpu"))
    conv = dict(model.named_modules())[config["layer"]]
    k2 = conv.kernel_size[0] * conv.kernel_size[1]
    size = k2 * (1 if conv.groups > 1 else conv.in_channels)
    return f"layer {config['layer']}, patch {size}, batch {config['batch']}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and batches (smoke run)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--outputs", default="all", choices=["all", "predicted"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        print("--repeats must be at least 1", file=sys.stderr)
        return 2
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif args.device in ("cpu", "cuda") and (args.device == "cpu" or torch.cuda.is_available()):
        device = torch.device(args.device)
    else:
        print(f"device {args.device!r} is not available (use auto, cpu or cuda)", file=sys.stderr)
        return 2
    if args.quick:
        args.repeats = 1
    torch.set_num_threads(min(2, torch.get_num_threads()))

    if args.worker:
        name, method = args.worker
        result = measure(name, method, device, args.outputs, args.repeats, args.quick, args.save)
        print(json.dumps(result))
        return 0

    compare_methods(device, args)
    return 0


def compare_methods(device: torch.device, args) -> None:
    """Every configuration with both methods: peak memory, time, and their ratios."""
    if device.type == "cuda":
        memory_kind = "growth of CUDA max_memory_allocated"
    else:
        memory_kind = "growth of peak RSS, one fresh process per method"
    print(f"patch-AGOP, outputs={args.outputs}, device={device}; memory = {memory_kind}")
    header = f"{'model':<26}{'setup':<40}{'method':<12}{'peak MiB':>10}{'time s':>9}"
    print(header)
    print("-" * len(header))
    summaries = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, config in configs(args.quick).items():
            results, agops = {}, {}
            for method in METHODS:
                save = Path(scratch) / f"{method}.pt"
                run = measure if device.type == "cuda" else measure_in_subprocess
                result = run(name, method, device, args.outputs, args.repeats, args.quick, save)
                results[method] = result
                agops[method] = torch.load(save, weights_only=True)
                print(
                    f"{name:<26}{patch_description(config):<40}{method:<12}"
                    f"{result['peak_bytes'] / 2**20:>10.1f}{result['seconds']:>9.3f}"
                )
            reference = agops["unfold"]
            difference = float((agops["patch_agop"] - reference).abs().max() / reference.abs().max())
            memory_ratio = results["unfold"]["peak_bytes"] / max(
                results["patch_agop"]["peak_bytes"], 1
            )
            time_ratio = results["unfold"]["seconds"] / results["patch_agop"]["seconds"]
            summaries.append((name, memory_ratio, time_ratio, difference))
    print("-" * len(header))
    parts = [
        f"{name}: {m:.1f}x less peak memory, {t:.1f}x faster (max rel. diff {d:.1e})"
        for name, m, t, d in summaries
    ]
    print(f"summary ({device}): patch_agop vs unfolding -- " + "; ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
