"""Ensembles: each member trained in a group ends as its lone train() run does (fp32 on the CPU, within
LOSS_TOL per step and one test image in accuracy), frozen filters stay put, a diverging member is
dropped while the others go on, unsupported networks train alone, groups fit the memory budget."""

import copy
import resource

import pytest
import torch
from timm.models.convmixer import ConvMixer as TimmConvMixer
from torch import nn

from convcov_core import init
from convcov_core.ensemble import (
    compatible,
    group_compatible,
    grouping_problem,
    heap,
    max_members,
    member_bytes,
    train_ensemble,
)
from convcov_core.ensemble.plan import split_evenly
from convcov_core.train import build_model_for, load_training_data, train
from helpers.ensemble import MIXED, assert_same_run, bars, events_by_run


@pytest.fixture(scope="module")
def mixed():
    events = []
    results = train_ensemble(MIXED, events.append, variants=["a", "b", "c"], run_indices=[3, 4, 5], n_runs=6)
    return results, events


def test_mixed_members_match_their_lone_runs(mixed):
    results, events = mixed
    lone_events = []
    for i, (config, member) in enumerate(zip(MIXED, results)):
        alone = train(config, lone_events.append, variant="abc"[i], run_index=3 + i, n_runs=6)
        assert_same_run(member, alone)
        assert member.variant == "abc"[i] and member.status == "ok"
    assert events_by_run(events) == events_by_run(lone_events)


def test_frozen_filters_stay_bit_identical_in_a_mixed_ensemble(mixed):
    results, _ = mixed
    info = load_training_data(MIXED[0])[4]
    for config, member in zip(MIXED, results):
        before = build_model_for(config, info).state_dict()
        for name, _ in init.depthwise_convs(build_model_for(config, info)):
            frozen_now = torch.equal(member.state_dict[f"{name}.weight"], before[f"{name}.weight"])
            assert frozen_now == config.freeze_filters, (config.seed, name)
            assert not torch.equal(member.state_dict[f"{name}.bias"], before[f"{name}.bias"])


def test_a_diverging_member_is_dropped_and_the_others_go_on():
    configs = [bars(seed=s) for s in range(3)]
    info = load_training_data(configs[0])[4]
    models = [build_model_for(c, info) for c in configs]
    with torch.no_grad():
        models[1].head.bias[0] = float("nan")  # its loss is NaN from the first step
    alone = [train(c, model=copy.deepcopy(m)) for c, m in zip(configs, models)]
    events = []
    results = train_ensemble(configs, events.append, models=models)
    assert [r.status for r in results] == ["ok", "diverged", "ok"]
    assert_same_run(results[1], alone[1])
    assert "at step 1 of 6" in results[1].message and results[1].final["test_acc"] is None
    assert_same_run(results[0], alone[0])  # the steps after the drop run in a smaller group
    assert_same_run(results[2], alone[2])
    assert [e.kind for e in events if e.run_index == 1] == ["done"]


def test_timm_convmixer_members_match_their_lone_runs():
    configs = [bars(seed=0, freeze_filters=True), bars(seed=1)]

    def timm_convmixer(seed):
        torch.manual_seed(seed)
        return TimmConvMixer(16, 2, kernel_size=5, patch_size=4, in_chans=1, num_classes=2)

    assert grouping_problem(timm_convmixer(0), 1, 28) is None
    alone = [train(c, model=timm_convmixer(c.seed)) for c in configs]
    results = train_ensemble(configs, models=[timm_convmixer(c.seed) for c in configs])
    for member, lone in zip(results, alone):
        assert_same_run(member, lone)


def test_an_unsupported_network_trains_alone_as_train_does():
    def with_group_norm(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(1, 8, 4, stride=4), nn.GroupNorm(2, 8), nn.GELU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))

    assert "GroupNorm" in grouping_problem(with_group_norm(0), 1, 28)
    configs = [bars(seed=0, max_steps=2), bars(seed=1, max_steps=2)]
    results = train_ensemble(configs, models=[with_group_norm(c.seed) for c in configs])
    for config, member in zip(configs, results):
        alone = train(config, model=with_group_norm(config.seed))
        assert member.history["loss"] == alone.history["loss"]  # the same code path: train()


def test_grouping_refuses_a_forward_that_mixes_members():
    class ChannelMean(nn.Module):
        def forward(self, x):
            return x - x.mean(1, keepdim=True)  # across all channels: every member's

    model = nn.Sequential(nn.Conv2d(1, 4, 4, stride=4), nn.Sequential(ChannelMean()), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 2))
    assert "ChannelMean" in grouping_problem(model, 1, 28)
    model[1] = nn.Sequential(nn.Identity())
    assert grouping_problem(model, 1, 28) is None

    class MixingForward(nn.Sequential):
        def forward(self, x):
            return super().forward(x).flip(1)  # reverses the members' channels

    mixing = MixingForward(nn.Conv2d(1, 4, 4, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert "mixes channels" in grouping_problem(mixing, 1, 28)


def test_a_stop_cancels_the_group_and_the_groups_after_it():
    configs = [bars(seed=0), bars(seed=1), bars(seed=0, lr=0.02)]
    results = train_ensemble(configs, lambda e: "stop" if e.seed == 1 and e.step == 2 else None)
    assert [r.status for r in results] == ["cancelled"] * 3
    assert results[0].history["step"] == results[1].history["step"] == [1, 2]
    assert "step 2 of 6" in results[1].message
    assert results[2].message == "cancelled before it started" and results[2].history["step"] == []


def test_group_compatible_groups_by_shared_settings_and_splits_by_memory():
    configs = [bars(seed=s, init=i) for s in range(4) for i in ("default", "gaussian")]
    configs.insert(3, bars(lr=0.02))
    assert compatible(configs[:3]) and not compatible(configs[:4])
    assert group_compatible(configs) == [[0, 1, 2, 4, 5, 6, 7, 8], [3]]
    info = load_training_data(configs[0])[4]
    one = member_bytes(build_model_for(configs[0], info), info.in_chans, info.image_size, 32)
    assert max_members(configs[0], build_model_for(configs[0], info), 3 * one + 1) == 3
    assert group_compatible(configs, memory_budget=3 * one) == [[0, 1, 2], [3], [4, 5, 6], [7, 8]]
    assert split_evenly(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert not compatible([bars(model="convmixer-16/2-niff"), bars(model="convmixer-16/2-niff", seed=1)])
    assert group_compatible([bars(model="convmixer-16/2-niff"), bars(model="convmixer-16/2-niff", seed=1)]) \
        == [[0], [1]]


def test_member_bytes_grows_with_the_batch_by_the_layer_outputs():
    model = nn.Sequential(nn.Conv2d(1, 4, 4, stride=4), nn.Flatten(), nn.Linear(4 * 7 * 7, 2))
    params = sum(p.numel() for p in model.parameters())
    outputs = 4 * 7 * 7 + 4 * 7 * 7 + 2  # conv, flatten, linear: values per image
    assert member_bytes(model, 1, 28, 10) == 16 * params + 6 * 10 * outputs
    assert member_bytes(model, 1, 28, 10, value_bytes=2) == 16 * params + 3 * 10 * outputs


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="at least one config"):
        train_ensemble([])
    with pytest.raises(ValueError, match="one variant"):
        train_ensemble([bars()], variants=["a", "b"])
    with pytest.raises(ValueError, match="share every setting"):
        train_ensemble([bars(), bars(lr=0.5)], models=[nn.Linear(1, 1), nn.Linear(1, 1)])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_members_match_their_lone_runs_with_the_step_replayed_as_a_graph(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # fp32 convolutions on both sides
    configs = [bars(device="cuda", epochs=4, seed=0), bars(device="cuda", epochs=4, seed=1, init="gaussian",
                                                          freeze_filters=True)]
    results = train_ensemble(configs)  # 12 steps: captured after 3, losses read back at each epoch's end
    info = load_training_data(configs[0])[4]
    for config, member in zip(configs, results):
        alone = train(config)
        assert member.device.startswith("cuda") and member.status == "ok"
        assert member.history["loss"] == pytest.approx(alone.history["loss"], abs=1e-4)
        name = member.layer_names[0]
        frozen_now = torch.equal(member.state_dict[f"{name}.weight"],
                                 build_model_for(config, info).state_dict()[f"{name}.weight"])
        assert frozen_now == config.freeze_filters


@pytest.mark.skipif(heap._glibc() is None, reason="glibc's malloc only (Linux)")
def test_large_blocks_stay_in_the_heap_while_a_group_trains():
    def page_faults_of_churn() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            block = torch.ones(16 * 2**20)  # 64 MB: above any mmap threshold of glibc's
            del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    with heap.keep_large_blocks():
        page_faults_of_churn()  # the heap grows once
        kept = page_faults_of_churn()
    assert kept * 10 < page_faults_of_churn()  # mmap again afterwards: 16,384 faults per block
