"""Depthwise filter gradient: the swapped convolution (convcov_core.depthwise) against PyTorch's own.

    python benchmarks/depthwise_grad.py           # kernel sizes 5..31, then ConvMixer-64/8 steps
    python benchmarks/depthwise_grad.py --device cuda --dtype bfloat16   # the same on a GPU, in bf16
    python benchmarks/depthwise_grad.py --quick   # tiny smoke run

Part 1 times dL/dw alone for one depthwise layer (batch 128, 64 channels, 14 x 14 positions: a
ConvMixer on 28 x 28 digits with 2 x 2 patches): PyTorch's convolution_backward asked for the
filter gradient only, against depthwise_weight_grad and against the same correlation computed with
FFTs (seed 002's idea for very large kernels), and prints their relative differences.
Part 2 times whole fp32 training steps (forward, backward, AdamW) channels_last, with the depthwise
convs as they are and switched by use_fast_depthwise(min_taps=1): ConvMixer-64/8 on 28 x 28 at
k = 5..15, and ConvMixer-256/8 on 32 x 32 at k = 5 (where switching loses; the fp32 threshold of
train() rests on these rows). Rounds alternate between the two; the best round of each is kept
(other work on a shared machine only slows a round down).
Part 3 times the forward depthwise convolution on 32 x 32 positions up to k = 51: PyTorch's direct
kernel (oneDNN on CPU, channels_last) against FFT convolution, to show whether an FFT crossover
exists on this machine. FFTs run in float32 whatever --dtype says (torch.fft has no bf16).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convcov_core.depthwise import depthwise_weight_grad, use_fast_depthwise  # noqa: E402
from convcov_core.models import ConvMixer  # noqa: E402

#: What train() does with the depthwise convs on each device and precision, for the summary line.
TRAIN_RULE = {("cpu", "float32"): "train() switches k >= 7 on CPU in fp32",
              ("cpu", "bfloat16"): "train() switches every depthwise conv on CPU under bf16",
              ("cuda", "float32"): "train() keeps PyTorch's kernels on CUDA",
              ("cuda", "bfloat16"): "train() keeps PyTorch's kernels on CUDA"}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn, rounds: int, device: torch.device) -> float:
    fn()  # warm-up: kernels, allocator
    times = []
    for _ in range(rounds):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def native_weight_grad(x, grad_out, weight, padding):
    return torch.ops.aten.convolution_backward(grad_out, x, weight, None, [1, 1], list(padding), [1, 1],
                                               False, [0, 0], x.shape[1], [False, True, False])[1]


def fft_weight_grad(x, grad_out, kernel_size, padding):
    """dL/dw as one circular cross-correlation per (n, c) in the Fourier domain, summed over n."""
    (kh, kw), (ph, pw) = kernel_size, padding
    shape = (x.shape[2] + 2 * ph, x.shape[3] + 2 * pw)
    x, grad_out = x.float().contiguous(), grad_out.float().contiguous()  # torch.fft has no bf16
    spectrum = torch.fft.rfft2(x, s=shape) * torch.fft.rfft2(grad_out, s=shape).conj()
    lags = torch.fft.irfft2(spectrum.sum(0), s=shape)  # lags[c, d] = sum_t x[t + d] g[t]
    rows, cols = torch.arange(-ph, kh - ph) % shape[0], torch.arange(-pw, kw - pw) % shape[1]
    return lags[:, rows][:, :, cols].unsqueeze(1)


def fft_conv(x, weight, padding):
    """Depthwise conv (cross-correlation, zero padding) by FFT of the padded images."""
    (kh, kw), (ph, pw) = weight.shape[2:], padding
    x_pad = F.pad(x.float().contiguous(), (pw, pw, ph, ph))  # torch.fft has no bf16
    shape = x_pad.shape[2:]
    out = torch.fft.irfft2(torch.fft.rfft2(x_pad) * torch.fft.rfft2(weight[:, 0].float().flip(-1, -2), s=shape),
                           s=shape)
    return out[..., kh - 1:shape[0], kw - 1:shape[1]]


def random_tensor(shape, gen, device, dtype, channels_last=False):
    t = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def filter_gradient_rows(batch, channels, size, kernels, rounds, device, dtype):
    rows = []
    for k in kernels:
        gen = torch.Generator().manual_seed(k)
        x = random_tensor((batch, channels, size, size), gen, device, dtype, channels_last=True)
        grad_out = random_tensor((batch, channels, size, size), gen, device, dtype, channels_last=True)
        weight = random_tensor((channels, 1, k, k), gen, device, dtype)
        padding = (k // 2, k // 2)
        ours = depthwise_weight_grad(x, grad_out, (k, k), padding)
        theirs = native_weight_grad(x, grad_out, weight, padding)
        by_fft = fft_weight_grad(x, grad_out, (k, k), padding)
        error = max(float((ours - theirs).norm() / theirs.norm()), float((by_fft - theirs).norm() / theirs.norm()))
        t_native = best_time(lambda: native_weight_grad(x, grad_out, weight, padding), rounds, device)
        t_ours = best_time(lambda: depthwise_weight_grad(x, grad_out, (k, k), padding), rounds, device)
        t_fft = best_time(lambda: fft_weight_grad(x, grad_out, (k, k), padding), rounds, device)
        rows.append((k, t_native, t_ours, t_fft, error))
    return rows


def forward_rows(batch, channels, size, kernels, rounds, device, dtype):
    rows = []
    for k in kernels:
        gen = torch.Generator().manual_seed(k)
        x = random_tensor((batch, channels, size, size), gen, device, dtype, channels_last=True)
        weight = random_tensor((channels, 1, k, k), gen, device, dtype)
        padding = (k // 2, k // 2)
        direct = F.conv2d(x, weight, padding=padding, groups=channels)
        error = float((fft_conv(x, weight, padding) - direct).norm() / direct.norm())
        t_direct = best_time(lambda: F.conv2d(x, weight, padding=padding, groups=channels), rounds, device)
        t_fft = best_time(lambda: fft_conv(x, weight, padding), rounds, device)
        rows.append((k, t_direct, t_fft, error))
    return rows


def step_time(dim, depth, k, size, batch, fast, steps, device, dtype):
    """Seconds per training step; parameters fp32, autocast to `dtype` when it is not float32."""
    torch.manual_seed(0)
    model = ConvMixer(dim, depth, k, 2, 10, 1)
    if fast:
        use_fast_depthwise(model, min_taps=1)
    model = model.to(device=device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    x = torch.randn(batch, 1, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="tensors of parts 1 and 3, autocast of part 2's steps")
    args = parser.parse_args(argv)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        batch, channels, size, kernels, rounds = 4, 8, 14, [5, 15], 1
        step_models, steps = [(8, 1, 9, 28), (8, 1, 15, 28)], 1
        forward_size, forward_kernels = 8, [5, 15]
    else:
        batch, channels, size, kernels, rounds = 128, 64, 14, [5, 7, 9, 11, 13, 15, 21, 31], args.rounds
        step_models = [(64, 8, k, 28) for k in (5, 7, 9, 11, 13, 15)] + [(256, 8, 5, 32)]
        steps = 3
        forward_size, forward_kernels = 32, [9, 15, 31, 51]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__}, {where}, {args.dtype}")
    print(f"\nFilter gradient dL/dw of one depthwise layer, batch {batch}, {channels} channels, "
          f"{size} x {size} positions, channels_last (best of {rounds})")
    print(f"{'k':>3}  {'PyTorch ms':>10}  {'swapped ms':>10}  {'speed-up':>8}  {'FFT ms':>8}  {'rel. diff':>9}")
    rows = filter_gradient_rows(batch, channels, size, kernels, rounds, device, dtype)
    for k, t_native, t_ours, t_fft, error in rows:
        print(f"{k:>3}  {t_native * 1e3:>10.1f}  {t_ours * 1e3:>10.1f}  {t_native / t_ours:>7.2f}x  "
              f"{t_fft * 1e3:>8.1f}  {error:>9.1e}")

    print(f"\n{args.dtype} training step (p = 2, one input channel, batch {batch}), best of {rounds} rounds "
          f"of {steps}")
    print(f"{'model':<16} {'k':>3}  {'image':>5}  {'PyTorch s/step':>14}  {'swapped s/step':>14}  {'speed-up':>8}")
    step_ratios = {}
    for dim, depth, k, image in step_models:
        native, fast = [], []
        for _ in range(rounds):
            native.append(step_time(dim, depth, k, image, batch, False, steps, device, dtype))
            fast.append(step_time(dim, depth, k, image, batch, True, steps, device, dtype))
        step_ratios[dim, k] = min(native) / min(fast)
        print(f"{f'ConvMixer-{dim}/{depth}':<16} {k:>3}  {image:>5}  {min(native):>14.3f}  {min(fast):>14.3f}  "
              f"{step_ratios[dim, k]:>7.2f}x")

    print(f"\nForward depthwise conv, batch {batch}, {channels} channels, {forward_size} x {forward_size} "
          f"positions (best of {rounds})")
    print(f"{'k':>3}  {'direct ms':>9}  {'FFT ms':>8}  {'FFT / direct':>12}  {'rel. diff':>9}")
    forward = forward_rows(batch, channels, forward_size, forward_kernels, rounds, device, dtype)
    for k, t_direct, t_fft, error in forward:
        print(f"{k:>3}  {t_direct * 1e3:>9.1f}  {t_fft * 1e3:>8.1f}  {t_fft / t_direct:>11.1f}x  {error:>9.1e}")

    by_k = {k: t_native / t_ours for k, t_native, t_ours, _, _ in rows}
    fft_wins = [k for k, t_native, t_ours, t_fft, _ in rows if t_fft < min(t_native, t_ours)] + \
               [k for k, t_direct, t_fft, _ in forward if t_fft < t_direct]
    narrow = {k: r for (dim, k), r in step_ratios.items() if dim == step_models[0][0]}
    print(f"\nsummary: filter gradient {by_k[15]:.1f}x faster than PyTorch's at k = 15 "
          f"({by_k[min(kernels)]:.1f}x at k = {min(kernels)}); ConvMixer-{step_models[0][0]} {args.dtype} step "
          f"{', '.join(f'{r:.2f}x at k = {k}' for k, r in narrow.items())} "
          f"({TRAIN_RULE[device.type, args.dtype]}); FFT fastest at "
          f"{'k = ' + ', '.join(map(str, sorted(set(fft_wins)))) if fft_wins else 'no k measured'}")


if __name__ == "__main__":
    main()
