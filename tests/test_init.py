"""init_depthwise_ changes exactly the depthwise filters, with the requested variance and structure,
on a plain nn.Sequential ConvMixer and on timm's ConvMixer and ConvNeXt."""

import math

import pytest
import timm
import torch
from torch import nn

from convcov_core import covariance as C
from convcov_core.init import (
    default_sigmas,
    default_variance,
    depthwise_convs,
    init_depthwise_,
    sample_scheme,
    scheme_names,
)


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


def reference_convmixer(dim, depth, kernel_size=9, patch_size=7, n_classes=10):
    """The ConvMixer of "Patches Are All You Need?", verbatim in shape."""
    return nn.Sequential(
        nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size), nn.GELU(), nn.BatchNorm2d(dim),
        *[nn.Sequential(
            Residual(nn.Sequential(
                nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"), nn.GELU(), nn.BatchNorm2d(dim))),
            nn.Conv2d(dim, dim, kernel_size=1), nn.GELU(), nn.BatchNorm2d(dim),
        ) for _ in range(depth)],
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(dim, n_classes),
    )


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def check_only_depthwise_changed(model, before, touched):
    weights = {f"{name}.weight" for name in touched}
    after = model.state_dict()
    for key, old in before.items():
        if key in weights:
            assert not torch.equal(after[key], old), f"{key} was not re-initialized"
        else:
            assert torch.equal(after[key], old), f"{key} changed but is not a depthwise filter"


def mean_square(model, touched):
    convs = dict(depthwise_convs(model))
    return [convs[name].weight.detach().double().pow(2).mean().item() for name in touched]


def test_finds_depthwise_convs_in_module_order():
    model = reference_convmixer(16, 3, kernel_size=5)
    names = [name for name, _ in depthwise_convs(model)]
    assert names == ["3.0.fn.0", "4.0.fn.0", "5.0.fn.0"]
    assert depthwise_convs(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 1, groups=8))) == []


@pytest.mark.parametrize("scheme", scheme_names("depthwise"))
def test_plain_convmixer_every_scheme(scheme):
    torch.manual_seed(0)
    model = reference_convmixer(96, 4, kernel_size=9, patch_size=4)
    before = snapshot(model)
    learned = [C.gaussian(7, s) for s in (1.0, 2.0)]
    touched = init_depthwise_(model, scheme, covariances=learned, generator=torch.Generator().manual_seed(1))
    assert len(touched) == 4
    check_only_depthwise_changed(model, before, touched)
    ms = mean_square(model, touched)
    target = default_variance(9)
    # 96 filters x 81 weights per layer; averaged over 4 layers the estimate is within a few percent.
    assert sum(ms) / len(ms) == pytest.approx(target, rel=0.15)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_explicit_variance():
    model = reference_convmixer(64, 2, kernel_size=7, patch_size=4)
    touched = init_depthwise_(model, "gaussian", variance=0.02, generator=torch.Generator().manual_seed(0))
    assert sum(mean_square(model, touched)) / 2 == pytest.approx(0.02, rel=0.2)


def test_gaussian_filters_follow_the_depth_schedule():
    """The empirical covariance of each layer's filters fits the sigma of the schedule."""
    dim, depth, k = 2048, 3, 9
    model = reference_convmixer(dim, depth, kernel_size=k, patch_size=4)
    touched = init_depthwise_(model, "gaussian", sigma_first=1.0, sigma_last=3.0,
                              generator=torch.Generator().manual_seed(0))
    convs = dict(depthwise_convs(model))
    fitted = [C.fit_sigma(C.empirical(convs[name].weight))[0] for name in touched]
    assert fitted == pytest.approx([1.0, 2.0, 3.0], rel=0.1)


def test_learned_covariances_are_transferred_to_target_size_and_depth():
    source = [C.gaussian(5, 0.8), C.gaussian(5, 1.6)]
    model = reference_convmixer(2048, 3, kernel_size=9, patch_size=4)
    touched = init_depthwise_(model, "learned", covariances=source, generator=torch.Generator().manual_seed(0))
    convs = dict(depthwise_convs(model))
    targets = C.transfer(source, 9, 3)
    for name, S in zip(touched, targets):
        S_hat = C.empirical(convs[name].weight)
        assert C.pearson(S_hat, S) > 0.97


def test_default_schedule_scales_with_kernel_size():
    assert default_sigmas(9) == (1.0, 3.0)
    assert default_sigmas(15) == (1.0, 5.0)
    assert default_sigmas(3) == (1.0, 1.0)


@pytest.mark.parametrize("name", ["convmixer_768_32", "convnext_atto", "convnext_tiny"])
def test_timm_models(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10)
    before = snapshot(model)
    touched = init_depthwise_(model, "gaussian", generator=torch.Generator().manual_seed(0))
    assert len(touched) == {"convmixer_768_32": 32, "convnext_atto": 12, "convnext_tiny": 18}[name]
    check_only_depthwise_changed(model, before, touched)
    k = dict(depthwise_convs(model))[touched[0]].kernel_size[0]
    ms = mean_square(model, touched)
    assert sum(ms) / len(ms) == pytest.approx(default_variance(k), rel=0.1)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_default_scheme_matches_pytorch_default_distribution():
    k, n = 5, 20_000
    ours = sample_scheme("default", k, n, generator=torch.Generator().manual_seed(0))
    bound = 1 / math.sqrt(k * k)  # kaiming_uniform(a=sqrt(5)) bound for fan_in = k^2
    assert ours.abs().max() <= bound
    assert ours.abs().max() > 0.99 * bound
    conv = nn.Conv2d(n, n, k, groups=n)
    assert ours.var().item() == pytest.approx(conv.weight.var().item(), rel=0.05)


# --- non-square kernels (band filters such as InceptionNeXt's 1 x 11 and 11 x 1) --------------


def window_covariance(S, k: int, rows: range, cols: range):
    """The sub-matrix of a flat k^2 x k^2 covariance for the pixels of a window."""
    idx = torch.tensor([k * i + j for i in rows for j in cols])
    return S[idx][:, idx]


@pytest.mark.parametrize("scheme,covariances", [("gaussian", None), ("learned", "varying")])
def test_non_square_layers_get_the_central_window_of_the_square_covariance(scheme, covariances):
    """A kh x kw layer's filters follow the covariance of the central kh x kw window of the k x k
    one (k = max(kh, kw)), at PyTorch's default variance 1 / (3 kh kw)."""
    channels = 8192
    model = nn.Sequential(nn.Conv2d(channels, channels, (3, 7), groups=channels, padding=(1, 3)))
    source = None
    if covariances == "varying":  # a learned-like covariance whose variance falls off the centre
        weights = torch.tensor([0.5, 0.8, 1.0, 1.5, 1.0, 0.8, 0.5], dtype=torch.float64)
        scale = torch.kron(torch.diag(weights), torch.diag(weights))
        source = [scale @ C.gaussian(7, 1.5) @ scale]
    init_depthwise_(model, scheme, sigma_first=1.5, sigma_last=1.5, covariances=source,
                    generator=torch.Generator().manual_seed(0))
    w = model[0].weight.reshape(channels, 3, 7).double()
    assert w.pow(2).mean().item() == pytest.approx(1 / (3 * 21), rel=0.03)
    full = C.gaussian(7, 1.5) if source is None else source[0]
    target = window_covariance(full, 7, range(2, 5), range(7))
    S_hat = w.reshape(channels, 21).T @ w.reshape(channels, 21) / channels
    relative = (S_hat / S_hat.diagonal().mean() - target / target.diagonal().mean()).norm() / target.norm()
    assert relative < 0.05, relative


@pytest.mark.parametrize("scheme", ["default", "kaiming_normal", "orthogonal"])
def test_non_square_layers_with_iid_schemes(scheme):
    model = nn.Sequential(nn.Conv2d(4, 4, (1, 9), groups=4, padding=(0, 4)),
                          nn.Conv2d(4096, 4096, (9, 1), groups=4096, padding=(4, 0)))
    init_depthwise_(model, scheme, generator=torch.Generator().manual_seed(0))
    assert model[1].weight.pow(2).mean().item() == pytest.approx(1 / 27, rel=0.05)  # fan_in 9
    if scheme == "orthogonal":
        w = model[0].weight.reshape(4, 9)
        gram = w @ w.T
        torch.testing.assert_close(gram, torch.eye(4) * gram.diagonal().mean(), atol=1e-6, rtol=0)


def test_timm_inception_next_band_kernels():
    model = timm.create_model("inception_next_atto", pretrained=False, num_classes=10)
    before = snapshot(model)
    touched = init_depthwise_(model, "gaussian", generator=torch.Generator().manual_seed(0))
    shapes = [dict(depthwise_convs(model))[name].kernel_size for name in touched]
    assert {(3, 3), (1, 9), (9, 1)} == set(shapes) and len(touched) == 36
    check_only_depthwise_changed(model, before, touched)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 64, 64))).all()


def test_orthogonal_rows_are_orthogonal():
    w = sample_scheme("orthogonal", 5, 10, generator=torch.Generator().manual_seed(0)).reshape(10, 25)
    gram = w @ w.T
    torch.testing.assert_close(gram, torch.eye(10) * gram.diagonal().mean(), atol=1e-5, rtol=0)


def test_sample_scheme_gaussian_uses_sigma():
    x = sample_scheme("gaussian", 7, 50_000, sigma=2.5, generator=torch.Generator().manual_seed(0))
    assert C.fit_sigma(C.empirical(x))[0] == pytest.approx(2.5, rel=0.05)
    assert x.pow(2).mean().item() == pytest.approx(default_variance(7), rel=0.05)


# --- bad input ---------------------------------------------------------------------------------


def test_unknown_scheme():
    with pytest.raises(ValueError, match="unknown init scheme 'xavier'.*gaussian"):
        init_depthwise_(reference_convmixer(8, 1), "xavier")


def test_model_without_depthwise_convs():
    with pytest.raises(ValueError, match="no depthwise convolutions"):
        init_depthwise_(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))


def test_learned_without_covariances():
    with pytest.raises(ValueError, match="covariances"):
        init_depthwise_(reference_convmixer(8, 1), "learned")


@pytest.mark.parametrize("variance", [0.0, -1.0, float("nan"), "huge"])
def test_bad_variance(variance):
    with pytest.raises(ValueError, match="variance"):
        init_depthwise_(reference_convmixer(8, 1), "default", variance=variance)


@pytest.mark.parametrize("sigma", [0.0, float("inf")])
def test_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma_first"):
        init_depthwise_(reference_convmixer(8, 2), "gaussian", sigma_first=sigma)
