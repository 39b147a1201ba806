"""Depthwise convolution with a faster filter gradient on CPU, for large kernels.

For y = DepthwiseConv_{kh x kw}(x) + b (stride 1, zero padding (ph, pw), one filter per channel)
and the upstream gradient g = dL/dy (N x C x H_out x W_out), the filter gradient is a correlation
summed over the batch:
    dL/dw[c, i, j] = sum_{n, h, w} g[n, c, h, w] * x_pad[n, c, h + i, w + j]
that is, a depthwise convolution of the padded images x_pad[n, c] (N * C "channels") with g[n, c]
as their filters, whose kh x kw outputs are summed over n. On CPU, oneDNN's own fp32
filter-gradient kernel grows steeply with k and falls off a cliff from k = 15 on
(benchmarks/depthwise_grad.py; 2 cores, 128 x 64 x 14 x 14 images: about 24 ms at k = 9, 45 ms at
k = 13, 170-190 ms at k = 15, against 13-20 and 23 ms swapped). At k = 5 a switched fp32 step wins
nothing (1.07x on ConvMixer-64/8, 0.98x on ConvMixer-256/8), while from k = 7 on every step measured
was faster (1.1-1.4x at k = 7-13, 3.75x at k = 15); so in fp32 convs of 7 x 7 taps and more
switch. Under CPU bf16 autocast oneDNN's bf16 filter gradient is 3-5x slower than its fp32
one while the swapped convolution in bf16 is the fastest of all, so there every depthwise conv
switches (train() passes min_taps=1). The input gradient is the forward convolution of g with the
flipped filters,
    dL/dx = DepthwiseConv(g, w[:, :, ::-1, ::-1], padding (kh - 1 - ph, kw - 1 - pw)),
which oneDNN runs up to 2x faster than its own input-gradient kernel (bf16; fp32 at k >= 15);
the bias gradient is the sum of g.

`use_fast_depthwise(model)` switches every such nn.Conv2d of a model to `FastDepthwiseConv2d` in
place (same parameters, state dict and isinstance checks); train() does this on CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

Tensor = torch.Tensor

SWAPPED_MIN_TAPS = 7 * 7  # kh * kw from which a conv switches in fp32 on CPU
#: The largest kernel side that oneDNN's bf16 depthwise convolution runs well on CPU (torch 2.14.1):
#: with channels_last images at k = 15, 80 x 8 x 32 x 32 images and single 31 x 31 maps of 7, 8 or 16
#: channels never return (24 or 64 channels do; seen on an Intel Xeon with AMX and on an AMD EPYC
#: with AVX512-BF16), and on NCHW images oneDNN falls back to im2col and a GEMM at about 4 GFLOP/s.
#: Wider bf16 convs run in fp32 on channels_last images (_depthwise_conv): every shape tried
#: returned, 7-31x faster than NCHW bf16 (AMD EPYC, one thread, CPU time: 128 x 64 x 14 x 14 images
#: at k = 15, 8.5 vs 180 ms; 128 x 256 x 32 x 32, 288 ms vs 3.7 s; 128 x 64 x 32 x 32 at k = 51,
#: 216 ms vs 6.7 s). A ConvMixer-64/8 step at k = 15: 13x faster on one thread, 4.2x on two
#: (benchmarks/roofline.py --ab).
BF16_CHANNELS_LAST_MAX_KERNEL = 13


def depthwise_weight_grad(x: Tensor, grad_out: Tensor, kernel_size: tuple[int, int],
                          padding: tuple[int, int]) -> Tensor:
    """dL/dw (C x 1 x kh x kw) of a stride-1 depthwise conv from its input x (N x C x H x W) and
    output gradient grad_out, as the depthwise convolution of x_pad with grad_out summed over n."""
    n, c, h, w = x.shape
    ph, pw = padding
    x_pad = F.pad(x.contiguous(), (pw, pw, ph, ph))  # padding a channels_last tensor is slower
    # reshape, not view: a 1 x 1 image is both contiguous and channels_last, and F.pad may
    # return it channels_last (ConvNeXt's last stage on 32 x 32 inputs)
    images = x_pad.reshape(1, n * c, h + 2 * ph, w + 2 * pw)
    filters = grad_out.reshape(n * c, 1, *grad_out.shape[2:])
    lags = F.conv2d(images, filters, groups=n * c)
    return lags.reshape(n, c, *kernel_size).sum(0).unsqueeze(1)


def depthwise_input_grad(grad_out: Tensor, weight: Tensor, padding: tuple[int, int]) -> Tensor:
    """dL/dx of a stride-1 depthwise conv: grad_out convolved with the flipped filters; the
    transposed convolution where the padding exceeds kernel size - 1 (the flipped form would need
    a padding below 0)."""
    (kh, kw), (ph, pw) = weight.shape[2:], padding
    if ph > kh - 1 or pw > kw - 1:
        return F.conv_transpose2d(grad_out, weight, padding=(ph, pw), groups=weight.shape[0])
    return _depthwise_conv(grad_out, weight.flip(2, 3), None, (kh - 1 - ph, kw - 1 - pw))


def _cpu_autocast_dtype() -> torch.dtype | None:
    """The dtype CPU autocast casts convolutions to, or None when it is off (torch >= 2.4 names it
    by device; older releases by the *_cpu_* functions)."""
    if hasattr(torch, "get_autocast_dtype"):
        return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
    return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None


def _depthwise_conv(x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int]) -> Tensor:
    """F.conv2d with one filter per channel, stride 1. A bf16 conv on CPU with filters wider than
    BF16_CHANNELS_LAST_MAX_KERNEL runs in fp32 on channels_last images and comes back in bf16, in x's
    layout."""
    wide = max(weight.shape[2:]) > BF16_CHANNELS_LAST_MAX_KERNEL
    if not (wide and x.device.type == "cpu" and torch.bfloat16 in (x.dtype, _cpu_autocast_dtype())):
        return F.conv2d(x, weight, bias, 1, padding, 1, x.shape[1])
    channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", enabled=False):
        y = F.conv2d(x.float().contiguous(memory_format=torch.channels_last), weight.float(),
                     None if bias is None else bias.float(), 1, padding, 1, x.shape[1])
    return y.to(torch.bfloat16, memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class _DepthwiseConv2dFn(torch.autograd.Function):
    """y = conv2d(x, weight, bias, stride 1, padding, groups = channels) with the backward above.
    Under CPU autocast the forward runs in bf16 and so does the backward (in grad_out's dtype);
    each gradient is returned in its input's dtype."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int]) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.bias_dtype = padding, None if bias is None else bias.dtype
        return _depthwise_conv(x, weight, bias, padding)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = depthwise_input_grad(grad_out, weight.to(grad_out.dtype), ctx.padding).to(x.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = depthwise_weight_grad(x.to(grad_out.dtype), grad_out, tuple(weight.shape[2:]),
                                           ctx.padding).to(weight.dtype)
        if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3)).to(ctx.bias_dtype)
        return grad_x, grad_w, grad_b, None


def _symmetric_padding(conv: nn.Conv2d) -> tuple[int, int] | None:
    """The conv's zero padding as (ph, pw) when it is symmetric, else None ("same" with an even k)."""
    if conv.padding_mode != "zeros":
        return None
    if conv.padding == "same":
        if any(k % 2 == 0 for k in conv.kernel_size):
            return None
        return tuple((k - 1) // 2 for k in conv.kernel_size)
    if conv.padding == "valid":
        return (0, 0)
    return tuple(conv.padding)


def is_eligible(conv: nn.Module) -> bool:
    """A Conv2d with one filter per channel, stride 1, no dilation and symmetric zero padding."""
    return (isinstance(conv, nn.Conv2d) and conv.groups == conv.in_channels == conv.out_channels
            and conv.groups > 1 and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and _symmetric_padding(conv) is not None)


class FastDepthwiseConv2d(nn.Conv2d):
    """nn.Conv2d (depthwise, stride 1) whose backward is depthwise_weight_grad / depthwise_input_grad."""

    def forward(self, x: Tensor) -> Tensor:
        return _DepthwiseConv2dFn.apply(x, self.weight, self.bias, _symmetric_padding(self))


def use_fast_depthwise(model: nn.Module, min_taps: int = SWAPPED_MIN_TAPS) -> int:
    """Switch every eligible depthwise Conv2d of `model` with kh * kw >= min_taps to
    FastDepthwiseConv2d in place; returns how many were switched. Parameters and state dict keys
    are unchanged."""
    switched = 0
    for module in model.modules():
        taps = module.kernel_size[0] * module.kernel_size[1] if isinstance(module, nn.Conv2d) else 0
        if type(module) is nn.Conv2d and taps >= min_taps and is_eligible(module):
            module.__class__ = FastDepthwiseConv2d
            switched += 1
    return switched
