"""Tests for convcov_core.analysis and agop: patch-AGOP against brute force, the CNFA theorem, CNFM."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convcov_core import analysis

# ---------------------------------------------------------------------------------------------
# Tiny float64 models and an independent brute-force patch-AGOP


def regular_model(stride: int, dilation: int = 1) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(3, 4, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.Tanh(),
        nn.AdaptiveMaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).double()


def depthwise_model(stride: int, multiplier: int) -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(2, 3, 1),
        nn.Tanh(),
        nn.Conv2d(3, 3 * multiplier, 5, stride=stride, padding=2, groups=3),
        nn.GELU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(12 * multiplier, 4),
    ).double()


def images(n: int = 6, channels: int = 2, size: int = 8, seed: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, size, size, generator=generator, dtype=torch.float64)


def brute_force_agop(model: nn.Sequential, index: int, inputs: torch.Tensor, outputs) -> torch.Tensor:
    """Unfold the layer input into leaf patches, rebuild the layer output, backprop every output."""
    model.eval()
    conv, prefix, suffix = model[index], model[:index], model[index + 1 :]
    depthwise = conv.groups > 1
    k2 = conv.kernel_size[0] * conv.kernel_size[1]
    total = 0
    for x in inputs:
        h = prefix(x[None]).detach()
        patches = F.unfold(
            h, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride
        ).requires_grad_(True)
        size = [
            (h.shape[d + 2] + 2 * conv.padding[d] - conv.dilation[d] * (conv.kernel_size[d] - 1) - 1)
            // conv.stride[d]
            + 1
            for d in range(2)
        ]
        if depthwise:
            channels = conv.in_channels
            w = conv.weight.reshape(channels, -1, k2)
            z = torch.einsum("cmk,bckl->bcml", w, patches.reshape(1, channels, k2, -1))
        else:
            z = conv.weight.reshape(conv.out_channels, -1) @ patches
        z = z.reshape(1, conv.out_channels, *size) + conv.bias.reshape(1, -1, 1, 1)
        out = suffix(z).flatten()
        if outputs == "all":
            chosen = range(out.numel())
        elif outputs == "predicted":
            chosen = [int(out.argmax())]
        else:
            chosen = [outputs]
        for k in chosen:
            (grad,) = torch.autograd.grad(out[k], patches, retain_graph=True)
            grad = grad[0]
            if depthwise:
                grad = grad.reshape(conv.in_channels, k2, -1)
                total = total + torch.einsum("ckl,cjl->kj", grad, grad) / conv.in_channels
            else:
                total = total + grad @ grad.T
    return total / len(inputs)


def assert_relative_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5):
    assert actual.shape == expected.shape
    assert expected.abs().max() > 0
    assert (actual - expected).abs().max() <= rtol * expected.abs().max()


OUTPUTS = ["all", 3, "predicted"]


@pytest.mark.parametrize("outputs", OUTPUTS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("index", [0, 2])
def test_patch_agop_matches_brute_force_regular(index, stride, outputs):
    model, x = regular_model(stride), images()
    expected = brute_force_agop(model, index, x, outputs)
    actual = analysis.patch_agop(model, str(index), x, outputs=outputs, batch_size=4)
    assert actual.shape == (model[index].in_channels * 9,) * 2
    assert_relative_close(actual, expected)


@pytest.mark.parametrize("outputs", OUTPUTS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_patch_agop_matches_brute_force_depthwise(multiplier, stride, outputs):
    model, x = depthwise_model(stride, multiplier), images()
    expected = brute_force_agop(model, 2, x, outputs)
    actual = analysis.patch_agop(model, "2", x, outputs=outputs, batch_size=4)
    assert actual.shape == (25, 25)
    assert_relative_close(actual, expected)


def test_patch_agop_matches_brute_force_with_dilation():
    model, x = regular_model(stride=1, dilation=2), images()
    assert_relative_close(analysis.patch_agop(model, "2", x), brute_force_agop(model, 2, x, "all"))


def test_patch_agop_leaves_model_state_and_parameter_grads_alone():
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(192, 2)
    ).double()
    model[0].weight.requires_grad_(False)  # a frozen layer still has a patch-AGOP
    model.train()
    x = images()
    first = analysis.patch_agop(model, "0", x, batch_size=6)
    assert model.training and model[1].training
    assert all(p.grad is None for p in model.parameters())
    # eval mode: BatchNorm uses running statistics, so batching does not change the result
    assert_relative_close(analysis.patch_agop(model, "0", x, batch_size=1), first, rtol=1e-10)


def test_cnfa_report_rows_match_single_layer_calls():
    model, x = regular_model(stride=2), images()
    calls = []
    rows = analysis.cnfa_report(model, x, batch_size=4, progress=lambda *done: calls.append(done))
    assert calls == [(4, 6), (6, 6)]
    assert [row.name for row in rows] == ["0", "2"]
    for row in rows:
        conv = model[int(row.name)]
        assert row.kind == "regular" and row.kernel_size == 3
        assert row.matrix_size == conv.in_channels * 9
        assert_relative_close(row.agop, analysis.patch_agop(model, row.name, x), rtol=1e-10)
        assert torch.equal(row.cnfm, analysis.cnfm(conv))
        assert row.r == pytest.approx(analysis.pearson(row.agop, row.cnfm))
        assert -1 <= row.r <= 1 and -1 <= row.cosine <= 1
    depthwise_rows = analysis.cnfa_report(depthwise_model(1, 1), x, layers=["2"], outputs=np.int64(0))
    assert [(row.name, row.kind, row.matrix_size) for row in depthwise_rows] == [
        ("2", "depthwise", 25)
    ]


# ---------------------------------------------------------------------------------------------
# Seed 001, Theorem 1: one GD step from W = 0 makes the CNFM proportional to the patch-AGOP


class GlobalSum(nn.Module):
    def forward(self, x):
        return x.sum(dim=(2, 3))


def test_cnfa_holds_after_one_gradient_step_from_zero():
    """f = g(W p_1, ..., W p_m) with g(0) = 0 and dg(0)/dz_l = U^T v for every position l."""
    generator = torch.Generator().manual_seed(3)
    first = nn.Conv2d(2, 4, 3, padding=1, bias=False)
    mixing = nn.Conv2d(4, 3, 1, bias=False)
    readout = nn.Linear(3, 1, bias=False)
    model = nn.Sequential(first, nn.Tanh(), mixing, nn.Tanh(), GlobalSum(), readout).double()
    with torch.no_grad():
        first.weight.zero_()
        mixing.weight.copy_(torch.randn(mixing.weight.shape, generator=generator))
        readout.weight.copy_(torch.randn(readout.weight.shape, generator=generator))
    x = torch.randn(16, 2, 7, 7, generator=generator, dtype=torch.float64)
    y = torch.randn(16, generator=generator, dtype=torch.float64)

    loss = 0.5 * (y - model(x).flatten()).pow(2).sum()
    (grad,) = torch.autograd.grad(loss, first.weight)
    with torch.no_grad():
        first.weight.sub_(0.05 * grad)

    points = torch.randn(8, 2, 7, 7, generator=generator, dtype=torch.float64)
    agop = analysis.patch_agop(model, "0", points)
    assert analysis.pearson(agop, analysis.cnfm(first)) > 0.99

    # Control: the proportionality comes from the step, not from the model; a random W lacks it.
    with torch.no_grad():
        first.weight.copy_(0.3 * torch.randn(first.weight.shape, generator=generator))
    agop = analysis.patch_agop(model, "0", points)
    assert analysis.pearson(agop, analysis.cnfm(first)) < 0.9


# ---------------------------------------------------------------------------------------------
# CNFM, correlations, feature maps, eigenvectors


def test_cnfm_regular_by_hand():
    conv = nn.Conv2d(1, 2, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[1.0, 1.0], [0.0, 0.0]]]]))
    expected = torch.tensor(
        [[2.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
        dtype=torch.float64,
    )
    assert torch.equal(analysis.cnfm(conv), expected)
    # mean filter [1, .5, 0, 0]; centred rows [0, -.5, 0, 0] and [0, .5, 0, 0]
    centred = torch.zeros(4, 4, dtype=torch.float64)
    centred[1, 1] = 0.5
    assert torch.allclose(analysis.cnfm(conv, centered=True), centred)


def test_cnfm_regular_multichannel_order_matches_weight_reshape():
    conv = nn.Conv2d(3, 5, 3).double()
    flat = conv.weight.detach().reshape(5, 27)
    assert torch.allclose(analysis.cnfm(conv), flat.T @ flat)


def test_cnfm_depthwise_is_channel_average():
    conv = nn.Conv2d(2, 2, 3, groups=2, bias=False)
    a = torch.zeros(3, 3)
    a[1, 1] = 2.0
    b = torch.zeros(3, 3)
    b[0, 0] = 1.0
    with torch.no_grad():
        conv.weight.copy_(torch.stack([a, b])[:, None])
    expected = torch.zeros(9, 9, dtype=torch.float64)
    expected[4, 4] = 4.0 / 2
    expected[0, 0] = 1.0 / 2
    assert torch.equal(analysis.cnfm(conv), expected)
    centred = analysis.cnfm(conv, centered=True)  # rows +-[-.5, 0, 0, 0, 1, 0, ...]
    assert centred[4, 4] == pytest.approx(1.0) and centred[0, 4] == pytest.approx(-0.5)


def test_pearson_and_cosine():
    a = torch.arange(12.0).reshape(3, 4)
    assert analysis.pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert analysis.pearson(a, -a) == pytest.approx(-1.0)
    assert analysis.cosine(a, 3 * a) == pytest.approx(1.0)
    assert analysis.cosine(a, 3 * a + 5) < 1 - 1e-3
    assert math.isnan(analysis.pearson(torch.ones(5), torch.arange(5.0)))


def test_feature_map_of_rank_one_m_is_abs_conv_response():
    """M = w w^T gives M^(1/2) = w w^T / |w|, so ||M^(1/2) p|| = |w . p|."""
    torch.manual_seed(4)
    conv = nn.Conv2d(3, 1, 3, stride=2, padding=1, bias=False).double()
    w = conv.weight.detach().flatten()
    x = torch.randn(3, 9, 11, dtype=torch.float64)
    expected = conv(x[None]).detach()[0, 0].abs()
    actual = analysis.feature_map(torch.outer(w, w), x, conv)
    assert actual.shape == expected.shape == (5, 6)
    assert torch.allclose(actual, expected, atol=1e-10)


def test_feature_map_depthwise_and_identity():
    torch.manual_seed(5)
    conv = nn.Conv2d(2, 2, 3, padding="same", groups=2, bias=False).double()
    w = torch.randn(9, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(w.reshape(1, 1, 3, 3).expand(2, 1, 3, 3))
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    expected = conv(x).detach()[0].pow(2).sum(dim=0).sqrt()
    assert torch.allclose(analysis.feature_map(torch.outer(w, w), x, conv), expected, atol=1e-10)
    # M = I: the norm of each patch, i.e. sqrt of the 3 x 3 box sum of x^2 over both channels
    ones = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    box = F.conv2d(x.pow(2).sum(dim=1, keepdim=True), ones, padding=1)
    identity = analysis.feature_map(torch.eye(9), x, conv)
    assert torch.allclose(identity, box[0, 0].sqrt(), atol=1e-10)


def test_top_eigenvectors_are_sorted_filters():
    torch.manual_seed(6)
    a = torch.randn(18, 18, dtype=torch.float64)
    M = a @ a.T
    values, filters = analysis.top_eigenvectors(M, 4, kernel_size=3, in_chans=2)
    assert values.shape == (4,) and filters.shape == (4, 2, 3, 3)
    assert torch.all(values[:-1] >= values[1:])
    assert values[0] == pytest.approx(float(torch.linalg.eigvalsh(M)[-1]))
    vectors = filters.reshape(4, 18)
    assert torch.allclose(M @ vectors.T, vectors.T * values, atol=1e-8)
    assert torch.all(vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True)) > 0)



@pytest.mark.parametrize("nudge", [0.0, 1e-12, -1e-12])
def test_an_eigenvector_with_tied_largest_entries_takes_the_sign_of_its_first(nudge):
    """An edge filter's six entries of equal size: rounding must not decide its sign."""
    edge = torch.tensor([1.0, 1, 1, 0, 0, 0, -1, -1, -1], dtype=torch.float64)
    edge[8] -= nudge  # the last entry a hair larger or smaller than the first
    for v in (edge, -edge):
        u = v / v.norm()
        _, filters = analysis.top_eigenvectors(4 * torch.outer(u, u) + 0.01 * torch.eye(9, dtype=torch.float64), 1,
                                               kernel_size=3)
        assert filters.flatten()[0] > 0 and torch.allclose(filters.flatten().abs(), u.abs(), atol=1e-8)

# ---------------------------------------------------------------------------------------------
# Bad input


def test_patch_agop_bad_input():
    model, x = regular_model(1), images()
    with pytest.raises(ValueError, match=r"unknown layer 'conv9'.*\['0', '2'\]"):
        analysis.patch_agop(model, "conv9", x)
    with pytest.raises(ValueError, match="not a Conv2d"):
        analysis.patch_agop(model, "1", x)
    with pytest.raises(ValueError, match="out of range"):
        analysis.patch_agop(model, "0", x, outputs=5)
    with pytest.raises(ValueError, match="outputs must be"):
        analysis.patch_agop(model, "0", x, outputs="max")
    with pytest.raises(ValueError, match="outputs"):
        analysis.patch_agop(model, "0", x, outputs=-1)
    with pytest.raises(ValueError, match="non-empty"):
        analysis.patch_agop(model, "0", x[:0])
    with pytest.raises(ValueError, match="batch_size"):
        analysis.patch_agop(model, "0", x, batch_size=0)
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten()).double()
    with pytest.raises(ValueError, match="groups=2"):
        analysis.patch_agop(grouped, "0", images(channels=4))
    with pytest.raises(ValueError, match="groups=2"):
        analysis.cnfm(grouped[0])
    with pytest.raises(ValueError, match="no regular or depthwise"):
        analysis.cnfa_report(grouped, images(channels=4))


class SkipsSecondConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.skipped = nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3)

    def forward(self, x):
        return self.used(x).flatten(1)


def test_patch_agop_layer_not_in_forward_pass():
    with pytest.raises(ValueError, match="not used"):
        analysis.patch_agop(SkipsSecondConv().double(), "skipped", images())


def test_analysis_bad_input():
    conv = nn.Conv2d(2, 3, 3)
    with pytest.raises(ValueError, match="energy"):
        analysis.effective_size(torch.ones(1, 3, 3), energy=0)
    with pytest.raises(ValueError, match="energy"):
        analysis.effective_size(torch.ones(1, 3, 3), energy=1.5)
    with pytest.raises(ValueError, match="odd"):
        analysis.effective_size(torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match="odd"):
        analysis.effective_size(torch.ones(1, 3, 5))
    with pytest.raises(ValueError, match="filters must be"):
        analysis.spectrum(torch.ones(2, 3, 3, 3))
    with pytest.raises(ValueError, match="size"):
        analysis.spectrum(torch.ones(1, 9, 9), size=5)
    with pytest.raises(ValueError, match="2-D spectrum"):
        analysis.radial_profile(torch.ones(4))
    with pytest.raises(ValueError, match="18 x 18"):
        analysis.top_eigenvectors(torch.eye(9), 2, kernel_size=3, in_chans=2)
    with pytest.raises(ValueError, match="n must be at most 9"):
        analysis.top_eigenvectors(torch.eye(9), 10, kernel_size=3)
    with pytest.raises(ValueError, match="n must be"):
        analysis.top_eigenvectors(torch.eye(9), 0, kernel_size=3)
    with pytest.raises(ValueError, match="patches have 18 entries"):
        analysis.feature_map(torch.eye(9), torch.ones(2, 5, 5), conv)
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        analysis.feature_map(torch.eye(18), torch.ones(3, 5, 5), conv)
    with pytest.raises(ValueError, match="correlate"):
        analysis.pearson(torch.ones(3), torch.ones(4))


