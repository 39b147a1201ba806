"""Training arithmetic known before a run starts (work.py), and the job cap built on it."""

import pytest
import torch

from convcov_core import init, reproduce, work
from convcov_core.jobs import JobManager, JobTooLarge
from convcov_core.runs import RunStore
from convcov_core.train import TrainConfig

TINY = TrainConfig(model="convmixer-16/2", kernel_size=5, patch_size=4, epochs=1, batch_size=32,
                   max_steps=5, device="cpu")


def convmixer_forward_flops(width, depth, k, patch, side=28, in_chans=1, classes=10):
    """By formula: patch embedding, then per block a depthwise k x k and a pointwise conv on the
    (side / patch)^2 map, then the classifier (2 FLOPs a multiply-add; BatchNorm, GELU and pooling
    are not counted, as flop_counter does not count them)."""
    cells = (side // patch) ** 2
    embed = 2 * width * in_chans * patch * patch * cells
    block = 2 * width * k * k * cells + 2 * width * width * cells
    return embed + depth * block + 2 * width * classes


@pytest.mark.parametrize("model, k, patch", [("convmixer-16/2", 5, 4), ("convmixer-64/8", 9, 2),
                                             ("convmixer-32/3", 15, 1)])
def test_forward_flops_of_a_convmixer_match_the_formula(model, k, patch):
    config = TINY.replace(model=model, kernel_size=k, patch_size=patch)
    width, depth = map(int, model.removeprefix("convmixer-").split("/"))
    assert work.forward_flops(work.meta_model(config), 1, 28) == convmixer_forward_flops(width, depth, k, patch)


def test_a_run_trains_with_three_forward_passes_per_image():
    per_image = work.forward_flops(work.meta_model(TINY), 1, 28)
    assert work.images_per_run(TINY) == 5 * 32
    assert work.run_flops(TINY) == 3 * per_image * 5 * 32


def test_a_network_the_meta_device_cannot_run_is_counted_on_the_cpu():
    niff = TINY.replace(model="convmixer-16/2-niff", kernel_size=15, patch_size=2)
    assert work.run_flops(niff) > 0


def test_a_job_over_the_arithmetic_cap_is_refused_before_it_starts(tmp_path):
    manager = JobManager(max_jobs=1, store=RunStore(tmp_path / "runs.db"), max_tflop=1)
    huge = TINY.replace(model="convmixer-512/16", kernel_size=51, patch_size=1, max_steps=None)
    with pytest.raises(JobTooLarge, match=r"about [\d,]+ TFLOP.*allows 1 per job \(CONVCOV_MAX_JOB_TFLOP\)"):
        manager.submit("compare", huge.replace(epochs=1), variants={"a": {}}, seeds=[0])
    assert manager.list_jobs() == []


def test_the_default_cap_refuses_the_job_the_image_cap_let_through(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVCOV_MAX_JOB_TFLOP", raising=False)
    manager = JobManager(max_jobs=1, store=RunStore(tmp_path / "runs.db"))
    big = TINY.replace(model="convmixer-512/16", kernel_size=51, patch_size=1, max_steps=None, epochs=1)
    assert work.images_per_run(big) < manager.max_samples  # within the image cap
    with pytest.raises(JobTooLarge, match="CONVCOV_MAX_JOB_TFLOP"):
        manager.submit("train", big)


def test_the_cap_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVCOV_MAX_JOB_TFLOP", "7")
    assert JobManager(store=RunStore(tmp_path / "runs.db")).max_tflop == 7
    monkeypatch.setenv("CONVCOV_MAX_JOB_TFLOP", "0")
    with pytest.raises(ValueError, match="CONVCOV_MAX_JOB_TFLOP must be a whole number >= 1"):
        JobManager(store=RunStore(tmp_path / "runs.db"))


def test_counting_on_the_meta_device_leaves_the_cached_data_real():
    from convcov_core.train import inputs

    inputs._load_data_cached.cache_clear()
    work.meta_model(TINY)
    assert inputs.load_training_data(TINY)[0].device.type == "cpu"  # was meta: "Cannot copy out of meta tensor"


def test_total_work_adds_every_run_and_counts_each_shape_once():
    runs = [TINY, TINY.replace(seed=1, init="gaussian"), TINY.replace(kernel_size=3, freeze_filters=True)]
    images, flops = work.total_work(runs)
    assert images == sum(work.images_per_run(c) for c in runs)
    assert flops == pytest.approx(sum(work.run_flops(c) for c in runs))


def test_a_network_that_does_not_take_the_images_is_named_not_counted(tmp_path):
    atto = TINY.replace(model="timm:convnext_atto", kernel_size=None, patch_size=None)  # 28 x 28 digits
    with pytest.raises(ValueError, match="timm:convnext_atto does not take mnist5k's 28 x 28 images"):
        work.run_flops(atto)
    manager = JobManager(max_jobs=1, store=RunStore(tmp_path / "runs.db"), max_tflop=1)
    job = manager.submit("train", atto)  # not refused for its arithmetic: its run says why it cannot train
    assert manager.wait(job, 120).state == "failed"


def _meta_step(config, batch):
    model = work.meta_model(config).train()
    return model, work.step_sites(model, torch.zeros(batch, 1, 28, 28, device="meta"))


def test_a_steps_forward_passes_add_up_to_the_flop_counters_forward():
    config = TINY.replace(model="convmixer-64/8", kernel_size=9, patch_size=2)
    model, sites = _meta_step(config, 1)
    rows = work.step_work(sites, 2, 0)
    assert rows["depthwise fwd"].flops + rows["pointwise fwd"].flops == work.forward_flops(model, 1, 28)


def test_each_backward_pass_costs_a_forward_and_frozen_filters_have_no_weight_gradient():
    model, sites = _meta_step(TINY, 4)
    n_params = sum(p.numel() for p in model.parameters())
    rows = work.step_work(sites, 2, n_params)
    assert rows["depthwise dL/dx"] == rows["depthwise dL/dw"] == rows["depthwise fwd"]
    stem = work.site_work(sites[0], 2)["pointwise fwd"]  # its input, the images, needs no gradient
    assert sites[0].kind == "pointwise" and not sites[0].input_grad
    assert rows["pointwise bwd"].flops == 2 * rows["pointwise fwd"].flops - stem.flops
    assert rows["adamw"] == work.OpWork(work.ADAMW_FLOPS * n_params, work.ADAMW_BYTES * n_params)
    for _, conv in init.depthwise_convs(model):
        conv.weight.requires_grad_(False)
    frozen = work.step_work(sites, 2, n_params)
    assert frozen["depthwise dL/dw"] == work.OpWork(0, 0) and frozen["depthwise dL/dx"] == rows["depthwise dL/dx"]


def test_elementwise_passes_move_their_tensors():
    _, sites = _meta_step(TINY, 4)
    gelu = next(s for s in sites if s.kind == "gelu")
    elements = torch.Size(gelu.out_shape).numel()
    assert work.site_work(gelu, 2)["gelu fwd"].bytes == 2 * elements * 2  # read x, write y, bf16
    assert work.site_work(gelu, 4)["gelu bwd"].bytes == 3 * elements * 4  # read g and x, write dx, fp32


def test_a_suite_counts_flops_over_the_runs_it_counts_images_of(monkeypatch):
    suite = reproduce.build_suite("tiny")
    monkeypatch.setattr(work, "run_flops", work.images_per_run)  # one FLOP an image
    assert reproduce.suite_flops(suite) == reproduce.suite_images(suite)
