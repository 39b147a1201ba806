"""depthwise.py's earlier forms, for the benchmarks that time them against today's (roofline.py --ab,
lab_presets.py --ab)."""

import torch
import torch.nn.functional as F


def bf16_nchw_conv(x, weight, bias, padding):
    """depthwise._depthwise_conv's rule for bf16 convs wider than 13 before it ran them in fp32: on NCHW
    copies of images and filters (a clone: a C x 1 x k x k filter strided as channels_last counts as
    contiguous), in bf16, back in x's layout."""
    channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    y = F.conv2d(x.contiguous(), weight.clone(memory_format=torch.contiguous_format), bias, 1, padding, 1, x.shape[1])
    return y.contiguous(memory_format=torch.channels_last) if channels_last else y
