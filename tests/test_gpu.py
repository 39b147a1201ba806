"""The CUDA paths: bf16 autocast, fused AdamW, the step replayed as a CUDA graph, losses read back
every 16 steps, torch.compile, filters sampled on the CPU and copied into a model on the GPU.
Skipped (with the reason) where no CUDA device exists; run on a GPU machine with `pytest -m gpu`."""

import math

import pytest
import torch

from convcov_core import init
from convcov_core.compare import compare
from convcov_core.models import build_model
from convcov_core.step import EagerStep, GraphStep, adamw
from convcov_core.train import TrainConfig, build_model_for, load_training_data, train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]

TINY = dict(dataset="mnist5k", model="convmixer-16/2", kernel_size=5, patch_size=4, epochs=1,
            batch_size=32, max_steps=40, device="cuda")


def tiny(**overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, **overrides})


def test_cuda_training_lowers_the_loss_under_bf16_autocast():
    events = []
    result = train(tiny(batch_size=64, lr=0.02), events.append)
    assert result.status == "ok", result.message
    assert result.device.startswith("cuda") and result.precision == "bf16"
    losses = result.history["loss"]
    assert result.history["step"] == list(range(1, 41)) and all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3
    assert [e.step for e in events if e.kind == "step"] == list(range(1, 41))  # read back in groups
    for S in result.covariances:  # kept on the CPU in float64 whatever the training device
        assert S.device.type == "cpu" and S.dtype == torch.float64 and S.shape == (25, 25)


def test_cuda_frozen_filters_stay_bit_identical():
    config = tiny(freeze_filters=True, keep_state_dict=True, init="gaussian", max_steps=20)
    info = load_training_data(config)[4]
    before = build_model_for(config, info).state_dict()
    result = train(config)
    assert result.status == "ok", result.message
    for name in result.layer_names:
        assert torch.equal(result.state_dict[f"{name}.weight"], before[f"{name}.weight"])
    assert not torch.equal(result.state_dict["head.weight"], before["head.weight"])


def test_cuda_divergence_is_found_inside_a_read_back_group():
    result = train(tiny(lr=10, weight_decay=10, schedule="constant"))  # the weights x -99 per step
    assert result.status == "diverged"
    step = len(result.history["loss"])
    assert f"at step {step} of 40" in result.message
    assert not math.isfinite(result.history["loss"][-1])
    assert all(math.isfinite(v) for v in result.history["loss"][:-1])


def test_cuda_cancel_stops_at_the_end_of_a_read_back_group():
    result = train(tiny(), lambda e: e.kind == "step" and e.step == 3)
    assert result.status == "cancelled"
    assert result.history["step"] == list(range(1, 17))  # steps 1-16 ran before the losses came back


def test_cuda_same_seed_gives_close_runs():
    a, b = train(tiny(max_steps=16)), train(tiny(max_steps=16))
    assert a.history["loss"] == pytest.approx(b.history["loss"], abs=0.05)


def test_cuda_compare_pairs_seeds():
    cmp = compare(tiny(max_steps=8), {"default": {}, "gaussian": {"init": "gaussian"}}, [0, 1])
    assert [len(cmp.runs[name]) for name in ("default", "gaussian")] == [2, 2]
    assert all(r.status == "ok" and r.device.startswith("cuda") for rs in cmp.runs.values() for r in rs)


def test_cuda_torch_compile_trains_and_reports_its_compile_time():
    result = train(tiny(compile=True, max_steps=32))
    assert result.status == "ok", result.message
    assert result.compile_seconds is not None and result.compile_seconds > 0
    assert "torch.compile took" in result.message
    assert sum(result.history["loss"][-4:]) < sum(result.history["loss"][:4])


def test_init_writes_the_same_filters_into_a_model_on_the_gpu_as_on_the_cpu():
    def initialized(device: str):
        model = build_model("convmixer-64/2", num_classes=10, in_chans=1, kernel_size=9, patch_size=2)
        model = model.to(device)
        init.init_depthwise_(model, "gaussian", generator=torch.Generator().manual_seed(0))
        return [conv.weight.detach() for _, conv in init.depthwise_convs(model)]

    on_gpu, on_cpu = initialized("cuda"), initialized("cpu")
    assert all(w.device.type == "cuda" for w in on_gpu)
    for g, c in zip(on_gpu, on_cpu):
        assert torch.equal(g.cpu(), c)


def test_graph_replay_takes_the_same_steps_as_eager_execution():
    torch.manual_seed(0)
    x, y = torch.randn(8, 32, 1, 16, 16, device="cuda"), torch.randint(0, 10, (8, 32), device="cuda")
    runs = []
    for kind in (EagerStep, GraphStep):
        torch.manual_seed(1)
        model = build_model("convmixer-16/2", num_classes=10, in_chans=1, kernel_size=5, patch_size=2).cuda()
        optimizer = adamw(list(model.parameters()), 0.01, 0.01, torch.device("cuda"), graphed=kind is GraphStep)
        step = kind(model, optimizer, torch.device("cuda"), dtype=torch.bfloat16)
        losses = [step(x[i], y[i], lr=0.01 * (i + 1) / 8)[0].item() for i in range(8)]
        runs.append((losses, [p.detach().clone() for p in model.parameters()]))
    (eager_losses, eager_params), (graph_losses, graph_params) = runs
    assert graph_losses == pytest.approx(eager_losses, abs=2e-2)  # bf16 autocast: close, not bitwise
    assert graph_losses[-1] < graph_losses[0]
    for a, b in zip(eager_params, graph_params):
        assert torch.allclose(a, b, atol=5e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_depthwise_conv_gives_autograds_gradients_on_cuda(dtype):
    """The swapped dL/dw and flipped-filter dL/dx (convcov_core.depthwise, used on CPU) on a GPU,
    under autocast, before anyone times them there (benchmarks/depthwise_grad.py --device cuda)."""
    from torch import nn

    from convcov_core.depthwise import use_fast_depthwise

    torch.manual_seed(0)
    reference = nn.Conv2d(32, 32, 9, groups=32, padding=4).cuda()
    fast = nn.Conv2d(32, 32, 9, groups=32, padding=4).cuda()
    fast.load_state_dict(reference.state_dict())
    assert use_fast_depthwise(fast) == 1
    x = torch.randn(16, 32, 14, 14, device="cuda").contiguous(memory_format=torch.channels_last)
    grads = []
    for conv in (reference, fast):
        leaf = x.clone().requires_grad_(True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            out = conv(leaf)
        out.float().square().sum().backward()
        grads.append([leaf.grad, conv.weight.grad, conv.bias.grad])
    tolerance = 1e-4 if dtype == torch.float32 else 3e-2
    for got, expected in zip(grads[1], grads[0]):
        assert got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance * float(expected.abs().max()))
