"""Training engine: loss goes down, frozen filters stay put, divergence and cancel, paired comparisons."""

import math
import shutil

import pytest
import torch

from convcov_core import init
from convcov_core.compare import compare, summarize
from convcov_core.train import (
    ProgressEvent,
    RunResult,
    TrainConfig,
    build_model_for,
    estimate_time,
    load_training_data,
    lr_at,
    resolve_device,
    train,
    train_group,
)

TINY = dict(dataset="mnist5k", model="convmixer-16/2", kernel_size=5, patch_size=4, epochs=1,
            batch_size=32, max_steps=12, device="cpu")


def tiny(**overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, **overrides})


def test_tiny_training_lowers_the_loss_and_reports_everything():
    events = []
    result = train(tiny(max_steps=30, batch_size=64, lr=0.02), events.append)
    assert result.status == "ok", result.message
    losses = result.history["loss"]
    assert len(losses) == 30 and result.history["step"] == list(range(1, 31))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3
    assert 0 <= result.final["test_acc"] <= 100 and result.final["loss"] == losses[-1]
    assert result.history["epoch_end_step"] == [30] and len(result.history["test_acc"]) == 1
    assert result.device == "cpu" and result.wall_time > 0
    assert result.layer_names == ["blocks.0.0.fn.0", "blocks.1.0.fn.0"]
    for S in result.covariances:
        assert S.shape == (25, 25) and S.dtype == torch.float64
        assert torch.allclose(S, S.T)
    kinds = [e.kind for e in events]
    assert kinds.count("step") == 30 and kinds.count("epoch") == 1 and kinds[-1] == "done"
    assert events[-1].status == "ok" and events[-1].test_acc == result.final["test_acc"]
    assert all(e.seed == 0 and e.total_steps == 30 for e in events)


def test_same_seed_same_run_on_cpu():
    threads = torch.get_num_threads()
    a, b = train(tiny(threads=1)), train(tiny(threads=1))
    assert torch.get_num_threads() == threads
    assert a.history["loss"] == b.history["loss"]
    assert a.final == b.final
    assert train(tiny(seed=1, threads=1)).history["loss"] != a.history["loss"]


def test_frozen_filters_stay_bit_identical_while_the_rest_trains():
    config = tiny(freeze_filters=True, keep_state_dict=True, init="gaussian")
    info = load_training_data(config)[4]
    before = build_model_for(config, info).state_dict()
    result = train(config)
    assert result.status == "ok"
    after = result.state_dict
    for name, _ in init.depthwise_convs(build_model_for(config, info)):
        assert torch.equal(after[f"{name}.weight"], before[f"{name}.weight"])
        assert not torch.equal(after[f"{name}.bias"], before[f"{name}.bias"])  # biases still train
    assert not torch.equal(after["head.weight"], before["head.weight"])
    trained = train(config.replace(freeze_filters=False))
    name = result.layer_names[0]
    assert not torch.equal(trained.state_dict[f"{name}.weight"], before[f"{name}.weight"])


def test_huge_learning_rate_ends_as_diverged_with_the_step():
    # the largest lr and weight decay TrainConfig takes: AdamW multiplies the weights by 1 - 10 x 10 each step
    result = train(tiny(lr=10, weight_decay=10, schedule="constant"))
    assert result.status == "diverged"
    step = len(result.history["loss"])
    assert f"at step {step} of 12" in result.message and "learning rate" in result.message
    assert not math.isfinite(result.history["loss"][-1])
    assert all(math.isfinite(v) for v in result.history["loss"][:-1])
    assert result.final["test_acc"] is None


@pytest.mark.parametrize("answer", [True, "stop"])
def test_callback_cancels_the_run(answer):
    seen = []

    def stop_at_three(event: ProgressEvent):
        seen.append(event.kind)
        return answer if event.kind == "step" and event.step == 3 else None

    result = train(tiny(), stop_at_three)
    assert result.status == "cancelled" and "step 3 of 12" in result.message
    assert result.history["step"] == [1, 2, 3]
    assert result.final["test_acc"] is None
    assert seen.count("step") == 3 and seen[-1] == "done"


def test_one_cycle_schedule_matches_the_convmixer_script():
    total, lr = 100, 0.01
    values = [lr_at(s, total, lr) for s in range(total)]
    assert values[39] == pytest.approx(lr)  # t = 0.4
    assert values[79] == pytest.approx(lr / 20)  # t = 0.8
    assert values[-1] == pytest.approx(0.0)
    assert values[0] == pytest.approx(lr * 0.01 / 0.4)
    assert max(values) == pytest.approx(lr)
    assert lr_at(5, total, lr, "constant") == lr


@pytest.mark.parametrize("field,value,words", [
    ("epochs", 0, "epochs"), ("lr", -1.0, "lr"), ("batch_size", 1.5, "batch_size"),
    ("schedule", "cosine", "schedule"), ("threads", 0, "threads"), ("init", "nope", "init scheme"),
    ("lr", float("nan"), "finite"), ("compile", "yes", "compile must be True or False"),
    ("freeze_filters", 1, "freeze_filters must be True or False"),
    ("precision", "fp16", "unknown precision 'fp16'; choose one of: auto, fp32, bf16"),
])
def test_bad_config_is_a_value_error_naming_the_field(field, value, words):
    with pytest.raises(ValueError, match=words):
        train(tiny(**{field: value}))


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")),
                    reason="torch.compile on CPU needs a C compiler (none on this machine)")
def test_compiled_training_matches_eager_and_reports_the_compile_time():
    eager = train(tiny(max_steps=4, threads=1))
    compiled = train(tiny(max_steps=4, threads=1, compile=True))
    assert compiled.status == "ok" and compiled.compile_seconds > 0
    assert "torch.compile took" in compiled.message and eager.compile_seconds is None
    assert compiled.history["loss"] == pytest.approx(eager.history["loss"], rel=1e-3)


def test_config_round_trips_through_a_dict():
    config = tiny(init="learned", covariances=[torch.eye(25)], dataset_params={"seed": 3})
    d = config.to_dict()
    assert "covariances" not in d and d["n_covariances"] == 1
    back = TrainConfig.from_dict(d)
    assert back.covariances is None
    assert {**back.to_dict(), "n_covariances": 1} == d
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainConfig.from_dict({**d, "epochz": 3})


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_estimate_time_is_positive_and_scales_with_steps():
    short = estimate_time(tiny(max_steps=10), n_steps=2)
    assert 0 < short < 600
    assert estimate_time(tiny(max_steps=1000, epochs=20), n_steps=2) > short


def _run(seed: int, acc: float | None, status: str = "ok") -> RunResult:
    return RunResult(config=tiny(seed=seed), history={}, final={"test_acc": acc, "train_acc": None,
                                                              "loss": None},
                     status=status, message="", wall_time=2.0, device="cpu")


def test_summary_matches_hand_computation():
    variants = {"default": {}, "gaussian": {"init": "gaussian"}}
    runs = {"default": [_run(0, 90.0), _run(1, 92.0), _run(2, 91.0)],
            "gaussian": [_run(0, 91.0), _run(1, 92.5), _run(2, 92.5)]}
    rows, verdicts = summarize(variants, [0, 1, 2], runs, {"default": None, "gaussian": "default"})
    base, gauss = rows
    assert base["mean"] == pytest.approx(91.0) and base["std"] == pytest.approx(1.0)
    assert base["reference"] is None and base["diff_mean"] is None
    diffs = [1.0, 0.5, 1.5]
    assert gauss["diffs"] == {0: 1.0, 1: 0.5, 2: 1.5}
    assert gauss["diff_mean"] == pytest.approx(1.0)
    assert gauss["diff_std"] == pytest.approx(math.sqrt(sum((d - 1) ** 2 for d in diffs) / 2))
    assert (gauss["wins"], gauss["losses"]) == (3, 0)
    # 95% t interval: 1.0 ± t(0.975, 2) * 0.5 / sqrt(3) = 1.0 ± 1.24: no clear winner at 3 seeds
    assert gauss["diff_low"] == pytest.approx(1.0 - 4.302653 * 0.5 / math.sqrt(3), abs=1e-5)
    assert gauss["winner"] is None
    assert verdicts == [
        "gaussian vs default: no clear winner, +1.0 points (95% interval -0.2 to +2.2, 3 seeds; "
        "3/3 favour gaussian)."]


def test_summary_judges_the_metric_asked_for():
    def run(seed, settled, raw):
        r = _run(seed, settled)
        r.final["test_acc_raw"] = raw
        return r

    variants = {"default": {}, "gaussian": {"init": "gaussian"}}
    runs = {"default": [run(0, 87.0, 12.0), run(1, 86.8, 18.0), run(2, 88.2, 10.0)],
            "gaussian": [run(0, 85.4, 46.0), run(1, 88.6, 47.0), run(2, 87.6, 52.0)]}
    refs = {"default": None, "gaussian": "default"}
    settled, _ = summarize(variants, [0, 1, 2], runs, refs)
    raw, raw_verdicts = summarize(variants, [0, 1, 2], runs, refs, "test_acc_raw")
    assert settled[1]["winner"] is None and raw[1]["winner"] == "gaussian"
    assert raw_verdicts[0].startswith("gaussian beat default by 35.0 points")
    with pytest.raises(ValueError, match="unknown metric"):
        summarize(variants, [0], runs, refs, "accuracy")


def test_diverged_seed_is_left_out_of_the_pairs():
    variants = {"a": {}, "b": {}}
    runs = {"a": [_run(0, 50.0), _run(1, 60.0)], "b": [_run(0, None, "diverged"), _run(1, 70.0)]}
    rows, _ = summarize(variants, [0, 1], runs, {"a": None, "b": "a"})
    assert rows[1]["n"] == 1 and rows[1]["diffs"] == {1: 10.0}
    assert rows[1]["statuses"] == {0: "diverged", 1: "ok"}


def test_compare_runs_every_variant_and_seed_and_pairs_them():
    events = []
    variants = {"default": {"init": "default"},
                "gaussian-frozen": {"init": "gaussian", "freeze_filters": True}}
    cmp = compare(tiny(max_steps=6), variants, [0, 1], events.append)
    assert cmp.status == "ok"
    for name in variants:
        assert [r.config.seed for r in cmp.runs[name]] == [0, 1]
        assert all(r.variant == name for r in cmp.runs[name])
    assert cmp.runs["gaussian-frozen"][0].config.freeze_filters
    row = cmp.rows[1]
    accs = {name: [r.final["test_acc"] for r in cmp.runs[name]] for name in variants}
    diffs = [g - d for g, d in zip(accs["gaussian-frozen"], accs["default"])]
    assert row["diff_mean"] == pytest.approx(sum(diffs) / 2)
    assert row["per_seed"] == dict(zip([0, 1], accs["gaussian-frozen"]))
    assert len(cmp.verdicts) == 1 and "gaussian-frozen" in cmp.verdict
    done = [e for e in events if e.kind == "done"]
    assert [(e.variant, e.seed, e.run_index, e.n_runs) for e in done] == [
        ("default", 0, 0, 4), ("gaussian-frozen", 0, 1, 4),
        ("default", 1, 2, 4), ("gaussian-frozen", 1, 3, 4)]


def test_compare_stops_when_the_callback_says_so():
    def stop_b_at_step_2(e):
        return "stop" if e.variant == "b" and e.step == 2 else None

    cmp = compare(tiny(max_steps=4), {"a": {}, "b": {}}, [0, 1], stop_b_at_step_2, ensemble=False)
    assert cmp.status == "cancelled"
    assert len(cmp.runs["a"]) == 1 and cmp.runs["b"] == []
    together = compare(tiny(max_steps=4), {"a": {}, "b": {}}, [0, 1], stop_b_at_step_2, ensemble=True)
    assert together.status == "cancelled" and together.runs == {"a": [], "b": []}  # one group: all stopped


def test_compare_refuses_bad_input():
    with pytest.raises(ValueError, match="variant"):
        compare(tiny(), {}, [0])
    with pytest.raises(ValueError, match="distinct"):
        compare(tiny(), {"a": {}}, [0, 0])
    with pytest.raises(ValueError, match="unknown training setting"):
        compare(tiny(), {"a": {"lrr": 1}}, [0])


def test_auto_precision_is_bf16_on_cuda_and_on_cpus_with_bf16_arithmetic_only(monkeypatch):
    from convcov_core import step
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(step, "cpu_has_fast_bf16", lambda: True)
    assert step.autocast_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(step, "cpu_has_fast_bf16", lambda: False)
    assert step.autocast_dtype("auto", cpu) is None
    assert step.autocast_dtype("auto", cuda) == torch.bfloat16
    assert step.autocast_dtype("auto", torch.device("mps")) is None
    assert step.autocast_dtype("fp32", cuda) is None and step.autocast_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of"):
        step.autocast_dtype("half", cpu)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cpu_training_in_each_precision_learns_and_says_which(precision):
    result = train(tiny(kernel_size=15, patch_size=2, max_steps=30, lr=0.02, precision=precision))
    assert result.status == "ok" and result.precision == precision
    assert ("bf16 autocast" in result.message) == (precision == "bf16")
    losses = result.history["loss"]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.2
    for S in result.covariances:  # parameters stay fp32; covariances float64 as always
        assert S.dtype == torch.float64 and torch.isfinite(S).all()


def test_bf16_and_fp32_training_start_from_the_same_step():
    fp32 = train(tiny(max_steps=3, precision="fp32"))
    bf16 = train(tiny(max_steps=3, precision="bf16"))
    assert bf16.history["loss"][0] == pytest.approx(fp32.history["loss"][0], rel=2e-2)  # same init and batch


def test_a_model_that_does_not_fit_the_images_is_refused_before_training():
    config = tiny(model="timm:convnext_atto", kernel_size=7, patch_size=4)
    with pytest.raises(ValueError, match=r"timm:convnext_atto \(kernel 7, patch 4\) does not fit the "
                                         r"28 × 28 images of mnist5k"):
        train(config)


def test_timm_convnext_trains_on_32_pixel_images_with_the_fast_depthwise_backward():
    # its last stage sees 1 x 1 images, which reach the swapped filter gradient as
    # channels_last-strided tensors (a view there failed)
    config = tiny(dataset="textures", dataset_params={"train_per_class": 8, "test_per_class": 4},
                  model="timm:convnext_atto", kernel_size=7, patch_size=4, max_steps=2, batch_size=32)
    result = train(config)
    assert result.status == "ok" and len(result.history["loss"]) == 2
    assert len(result.covariances) == 2 + 2 + 6 + 2  # ConvNeXt-Atto's blocks, one depthwise conv each


def test_a_model_with_band_filters_trains_and_keeps_its_square_layers_covariances():
    config = tiny(dataset="textures", dataset_params={"train_per_class": 8, "test_per_class": 4},
                  model="timm:inception_next_atto", kernel_size=None, patch_size=None, init="gaussian",
                  max_steps=1, batch_size=32)
    result = train(config)
    assert result.status == "ok"
    assert len(result.covariances) == 12 and all(S.shape == (9, 9) for S in result.covariances)  # 3 x 3
    assert all(name.endswith("dwconv_hw") for name in result.layer_names)  # not the 1 x 9 / 9 x 1 bands


def test_train_group_trains_several_configs_only_through_a_network_that_holds_them_all():
    with pytest.raises(ValueError, match="a network that holds them all"):
        train_group([tiny(), tiny(seed=1)])
    with pytest.raises(ValueError, match="one variant and run index per config"):
        train_group([tiny()], variants=["a", "b"])
