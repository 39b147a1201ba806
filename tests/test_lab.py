"""Training Lab and Learned Covariances helpers (convcov_core.lab) and their figures."""

import dataclasses
import io
import json
import math
import os
import time

import pytest
import torch
from safetensors.torch import save as save_safetensors

from convcov_app import lab
from convcov_core import compare, covariance, learned_sets, models, reach, text, train
from convcov_core.jobs import JobManager
from convcov_core.plots import curves as curve_figures
from convcov_core.plots import learned as learned_figures
from convcov_core.runs import RunStore
from helpers.files import malicious_checkpoint, tiny_convmixer_state

TINY_DATA = {"n_train": 64, "n_test": 32, "image_size": 16}
AVAILABLE = {"mnist5k": True, "textures": True}  # no CIFAR-10: the paper-like preset falls back to textures
TINY = lab.LabSetup(lab.lab_training(dataset="noisy-bars", dataset_params=TINY_DATA, model="convmixer-8/2",
                                     kernel_size=5, patch_size=4, batch_size=16), filters="trained", n_seeds=1)


# -- setups, presets, plans ------------------------------------------------------------------


def test_frozen_plan_pairs_each_variant_with_the_first_and_gives_sigmas_only_to_gaussian():
    setup = lab.LabSetup(inits=("default", "gaussian", "orthogonal"), sigma_first=0.5, sigma_last=2.0)
    plan = lab.plan_comparison(setup)
    assert list(plan.variants) == ["default-frozen", "gaussian-frozen", "orthogonal-frozen"]
    assert plan.references == {"default-frozen": None, "gaussian-frozen": "default-frozen",
                               "orthogonal-frozen": "default-frozen"}
    assert plan.variants["gaussian-frozen"]["sigma_first"] == 0.5
    assert "sigma_first" not in plan.variants["orthogonal-frozen"]
    assert plan.seeds == [0, 1] and plan.n_runs == 6
    assert plan.config("gaussian-frozen", 1).freeze_filters and plan.config("gaussian-frozen", 1).seed == 1
    assert plan.base.precision == "auto"
    plan = lab.plan_comparison(dataclasses.replace(setup, training=lab.lab_training(precision="fp32")))
    assert plan.config("default-frozen").precision == "fp32"


def test_both_filter_modes_pair_frozen_variants_among_themselves():
    plan = lab.plan_comparison(lab.LabSetup(filters="both (trained and frozen)"))
    assert plan.references == {"default": None, "gaussian": "default", "default-frozen": None,
                               "gaussian-frozen": "default-frozen"}


def test_learned_covariances_go_only_to_the_learned_variant():
    covs = [covariance.gaussian(5, 1.0), covariance.gaussian(5, 2.0)]
    plan = lab.plan_comparison(lab.LabSetup(inits=("gaussian", "learned"), filters="trained"), covs)
    assert plan.variants["learned"]["covariances"] == covs
    assert "covariances" not in plan.variants["gaussian"] and plan.base.covariances is None


@pytest.mark.parametrize("setup, learned, message", [
    (lab.LabSetup(inits=()), None, "at least one init"),
    (lab.LabSetup(inits=("learned",)), None, "learned init needs covariances"),
    (lab.LabSetup(inits=("xavier",)), None, "unknown init scheme"),
    (lab.LabSetup(filters="melted"), None, "filters must be one of"),
    (lab.LabSetup(n_seeds=0), None, "number of seeds"),
    (lab.LabSetup(lab.lab_training(epochs=0)), None, "epochs must be"),
])
def test_bad_setups_are_refused_with_a_message(setup, learned, message):
    with pytest.raises(ValueError, match=message):
        lab.plan_comparison(setup, learned)


def test_paper_preset_falls_back_when_its_dataset_is_missing_and_presets_are_recognized():
    available = {"mnist5k": True, "textures": True}
    setup, note = lab.preset_setup("Paper-like, GPU", available)
    assert setup.training.dataset == "textures" and "cifar10 is not in this server's data root" in note
    assert lab.preset_setup("Paper-like, GPU", {**available, "cifar10": True})[0].training.dataset == "cifar10"
    for name in lab.PRESETS:
        assert lab.matching_preset(lab.preset_setup(name, available)[0], available) == name
    assert lab.matching_preset(lab.LabSetup(lab.lab_training(epochs=3)), available) is None
    with pytest.raises(ValueError, match="unknown preset"):
        lab.preset_setup("fast", available)


def test_quick_cpu_default_is_the_frozen_comparison_of_the_init_scans_k9_row():
    setup = lab.PRESETS[lab.QUICK_CPU].setup
    t = setup.training
    assert (t.dataset, t.model, t.kernel_size, t.patch_size, t.epochs) == ("mnist5k", "convmixer-64/8", 9, 2, 1)
    assert setup.inits == ("default", "gaussian") and setup.filters == "frozen at init"


@pytest.mark.parametrize("name", list(lab.PRESETS))
def test_each_presets_regime_is_computed_from_its_config(name):
    config = lab.preset_setup(name, AVAILABLE)[0].training
    statement, wider = lab.regime_text(config)
    train_x, *_, info = train.load_training_data(config)
    steps = train.plan_steps(config, len(train_x))[2]
    assert statement.startswith(f"Regime: {config.model}, ") and f", {steps} steps ({config.epochs} epoch" in statement
    assert statement.endswith(f", {config.dataset} ({len(train_x):,} {info.image_size} x {info.image_size} images).")
    k = config.kernel_size
    if k is None or models.parse_spec(config.model)["niff"]:  # a ViT, or NIFF filters as large as the map
        assert "no square depthwise filters" in statement and wider is None
        return
    side = info.image_size // config.patch_size  # a ConvMixer's maps after its p x p patches
    assert f", {k} x {k} filters on {side} x {side} maps" in statement
    assert (wider is None) == (k <= side)
    if wider:
        assert wider.startswith(f"The filters are wider than the map: {k} × {k} filters on {side} × {side} feature "
                                "maps. A filter centred on the map already sees the whole image") and "paper's" in wider


def test_only_the_presets_measured_at_k15_keep_filters_wider_than_the_map():
    """Their numbers (docs/results.md) were measured with 15 x 15 filters on 14 x 14 maps; the page says so."""
    wide = {name for name in lab.PRESETS if lab.regime_text(lab.preset_setup(name, AVAILABLE)[0].training)[1]}
    assert wide == {lab.LEARNED_FROZEN, lab.PEER_FROZEN}
    assert all("15 × 15" in lab.PRESETS[name].expect for name in wide)


def test_a_model_that_does_not_fit_small_images_is_refused_before_training():
    config = lab.plan_comparison(TINY).base.replace(model="timm:convnext_atto", kernel_size=7, patch_size=4)
    with pytest.raises(ValueError, match="does not fit the 16 × 16 images of noisy-bars"):
        reach.check_model_fits(config)
    reach.check_model_fits(lab.plan_comparison(TINY).base)


def test_kernel_reach_note_names_the_layers_whose_maps_are_too_small():
    base = lab.plan_comparison(TINY).base  # noisy bars, 16 x 16
    assert reach.kernel_reach_note(base.replace(kernel_size=7, patch_size=4)) is None  # 4 x 4 maps use 7 x 7
    note = reach.kernel_reach_note(base.replace(kernel_size=9, patch_size=4))
    assert note.startswith("2 of 2 depthwise layers have filters wider than their feature maps can use on "
                           "the 16 × 16 images of noisy-bars: layers 1-2 see 4 × 4 maps and use only the "
                           "central 7 × 7 weights of 9 × 9 filters.")
    convnext = base.replace(model="timm:convnext_atto", kernel_size=7, patch_size=None,
                            dataset_params={**base.dataset_params, "image_size": 32})
    assert ("layers 5-10 see 2 × 2 maps and use only the central 3 × 3 weights of 7 × 7 filters; "
            "layers 11-12 see 1 × 1 maps and use only the centre weight") in reach.kernel_reach_note(convnext)
    with pytest.raises(ValueError, match="does not fit the 16 × 16 images"):
        reach.kernel_reach_note(base.replace(model="timm:convnext_atto", kernel_size=7, patch_size=4))


def test_run_reach_warning_is_none_when_the_runs_data_is_not_here():
    from helpers.runs import fake_run

    run = fake_run(k=5)
    assert reach.run_reach_warning(run) is None  # 14 x 14 maps use all of a 5 x 5 filter
    run.config = run.config.replace(patch_size=14)
    assert "see 2 × 2 maps and use only the central 3 × 3 weights" in reach.run_reach_warning(run)
    run.config = run.config.replace(dataset="cifar10", data_root="/nonexistent")
    assert reach.run_reach_warning(run) is None


def test_work_and_time_estimate_of_a_tiny_plan():
    plan = lab.plan_comparison(TINY)
    images, tflop = lab.plan_work(plan)
    assert images == 64 * plan.n_runs and tflop > 0  # 4 full batches of 16 a run
    seconds = lab.estimate_seconds(plan, n_steps=1)
    assert math.isfinite(seconds) and seconds > 0


@pytest.mark.parametrize("seconds, spaced, compact", [
    (None, "?", "?"), (float("nan"), "?", "?"), (42.4, "42 s", "42s"), (200, "3 min 20 s", "3m20s"),
    (3900, "1 h 05 min", "1h05m")])
def test_durations_read_naturally(seconds, spaced, compact):
    assert text.duration(seconds) == spaced and text.duration(seconds, compact=True) == compact


def test_progress_text_names_run_step_rate_and_time_left():
    event = train.ProgressEvent("step", 5, 10, 1, loss=1.0, variant="gaussian", seed=1, run_index=2, n_runs=4)
    text = lab.progress_text(event, 30.0, 10.0, 32)
    assert text == "Run 3 of 4: gaussian, seed 1 · step 5 of 10 · 80 images/s · about 30 s left"
    assert "Loading" in lab.progress_text(None, None, 1.0, 32)
    single = train.ProgressEvent("step", 5, 10, 1, loss=1.0)
    assert lab.progress_text(single, None, 10.0, 0) == "step 5 of 10"


# -- curves and results ----------------------------------------------------------------------


def _events():
    E = train.ProgressEvent
    return [E("step", 1, 2, 1, loss=2.0, variant="default", seed=0, run_index=0, n_runs=2),
            E("step", 2, 2, 1, loss=float("nan"), variant="default", seed=0, run_index=0, n_runs=2),
            E("epoch", 2, 2, 1, test_acc=55.0, variant="default", seed=0, run_index=0, n_runs=2),
            E("done", 2, 2, 1, status="ok", variant="default", seed=0, run_index=0, n_runs=2),
            E("step", 1, 2, 1, loss=1.5, variant="gaussian", seed=0, run_index=1, n_runs=2)]


def test_curves_from_events_follow_each_run():
    default, gaussian = lab.curves_from_events(_events())
    assert (default.steps, default.losses, default.epochs, default.test_acc, default.status) == \
        ([1, 2], [2.0, None], [1], [55.0], "ok")
    assert (gaussian.variant, gaussian.steps, gaussian.status) == ("gaussian", [1], "running")
    csv_text = lab.curves_csv([default])
    assert csv_text.splitlines()[0] == "group,variant,seed,step,loss,epoch,test_acc"
    assert len(csv_text.splitlines()) == 4


def _run(variant, init, seed, acc, status="ok", loss=1.0):
    history = {"step": [1, 2], "loss": [2.0, loss], "lr": [0.01, 0.0], "epoch": [0.5, 1.0],
               "train_acc": [50.0], "test_acc": [acc] if acc is not None else [], "images_per_s": [100.0],
               "epoch_end_step": [2]}
    return train.RunResult(config=train.TrainConfig(init=init, seed=seed), history=history,
                           final={"test_acc": acc}, status=status, message="m", wall_time=10.0, device="cpu",
                           variant=variant)


def _comparison(status="ok"):
    variants = {"default": {"init": "default"}, "gaussian": {"init": "gaussian"}}
    runs = {"default": [_run("default", "default", 0, 50.0), _run("default", "default", 1, 60.0)],
            "gaussian": [_run("gaussian", "gaussian", 0, 70.0),
                         _run("gaussian", "gaussian", 1, None, "diverged", float("nan"))]}
    refs = {"default": None, "gaussian": "default"}
    rows, verdicts = compare.summarize(variants, [0, 1], runs, refs)
    return compare.ComparisonResult(base_config=train.TrainConfig(), variants=variants, seeds=[0, 1], runs=runs,
                                  rows=rows, verdicts=verdicts, wall_time=40.0, status=status,
                                  references=refs)


def test_results_rows_show_mean_std_per_seed_paired_difference_and_problems():
    cmp = _comparison()
    default, gaussian = lab.results_rows(cmp)
    delta = "Δ vs reference, points [95% interval]"
    assert default["test accuracy % (mean ± std)"] == "55.0 ± 7.1"
    assert (default[delta], default["verdict"]) == ("reference", "reference")
    assert gaussian["per seed (0, 1)"] == "70.0, diverged"
    assert (gaussian[delta], gaussian["seeds ahead"], gaussian["verdict"]) == \
        ("+20.0 vs default", "1/1", "needs 2+ seeds")
    assert gaussian["time per run"] == "10 s"
    assert lab.problem_runs(cmp) == ["gaussian, seed 1: diverged: m"]
    assert lab.verdict_text(cmp) == cmp.verdict
    assert not lab.verdict_is_clear(cmp)  # one paired seed only
    clear = _comparison()
    clear.runs["gaussian"][1] = _run("gaussian", "gaussian", 1, 80.5)
    clear.rows, clear.verdicts = compare.summarize(clear.variants, [0, 1], clear.runs, clear.references)
    assert lab.verdict_is_clear(clear) and "beat default by 20.2 points" in lab.verdict_text(clear)
    assert lab.results_rows(clear)[1]["verdict"] == "gaussian better"
    assert "Cancelled: 4 of 4 runs finished" in lab.verdict_text(_comparison("cancelled"))


def test_history_json_is_strict_json_even_for_diverged_runs():
    cmp = _comparison()
    run = _run("x", "default", 0, 10.0)
    run.layer_names, run.covariances = ["blocks.0"], [covariance.gaussian(3, 1.0)]
    doc = json.loads(lab.history_json([cmp], [run]))
    assert doc["comparisons"][0]["runs"]["gaussian"][1]["history"]["loss"][1] is None
    assert len(doc["runs"][0]["covariances"]["blocks.0"]) == 9


def test_curves_from_saved_runs_and_figures():
    cmp = _comparison()
    curves = lab.curves_from_runs([r for rs in cmp.runs.values() for r in rs], prefix="#7 ")
    assert [c.group for c in curves] == ["#7 default"] * 2 + ["#7 gaussian"] * 2
    loss = curve_figures.loss_figure(curves)
    assert len(loss.data) == 4 and sum(t.showlegend for t in loss.data) == 2
    acc = curve_figures.accuracy_figure(curves)
    assert len(acc.data) == 3  # the diverged run never finished an epoch
    assert len(curve_figures.loss_figure([]).layout.annotations) == 1
    bars = curve_figures.results_figure(cmp.rows, cmp.seeds)
    assert [t.type for t in bars.data] == ["bar", "scatter", "bar", "scatter"]


def test_thin_keeps_short_curves_and_averages_long_ones():
    assert curve_figures.thin([1, 2], [3.0, None]) == ([1, 2], [3.0, None])
    xs, ys = curve_figures.thin(list(range(1000)), [float(i % 2) for i in range(1000)], max_points=10)
    assert len(xs) == 10 and all(abs(y - 0.5) < 1e-9 for y in ys)


# -- learned covariances ---------------------------------------------------------------------


def test_offset_profile_of_the_closed_form_is_the_gaussian_of_the_offset():
    k, sigma = 5, 1.3
    profile = learned_sets.offset_profile(2.0 * covariance.gaussian(k, sigma))
    d = torch.arange(-k + 1, k, dtype=torch.float64)
    expected = torch.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sigma**2))
    assert profile.shape == (9, 9) and torch.allclose(profile, expected)
    assert float(learned_sets.offset_profile(torch.eye(k * k))[k - 1, k - 1]) == 1.0
    assert len(learned_figures.offset_profile_figure([profile, profile], ["a", "b"]).data) == 2


def test_fits_recover_the_closed_form_sigmas_and_their_straight_line():
    sigmas = covariance.depth_schedule(0.8, 2.4, 4)
    fits = learned_sets.layer_fits([3.0 * covariance.gaussian(7, s) for s in sigmas])
    assert [f["sigma"] for f in fits] == pytest.approx(sigmas, rel=1e-3)
    assert all(f["r"] > 0.999 for f in fits)
    assert learned_sets.fitted_schedule(fits) == pytest.approx((0.8, 2.4), rel=1e-3)
    assert learned_sets.closed_form_schedule(9, 3) == [1.0, 2.0, 3.0]
    learned, closed, diff = learned_sets.closed_form_beside(5.0 * covariance.gaussian(5, 1.5), 1.5)
    assert float(diff.abs().max()) < 1e-12 and float(learned.diagonal().mean()) == pytest.approx(1.0)


def test_convmixer_checkpoint_layout_is_read_from_the_file():
    model, state = tiny_convmixer_state()
    learned = learned_sets.learned_from_state_dict(state, "convmixer", "mine.pt")
    assert learned.depth == 3 and learned.kernel_size == 5
    assert learned.layer_names == ["blocks.0.0.fn.0", "blocks.1.0.fn.0", "blocks.2.0.fn.0"]
    expected = covariance.empirical(model.blocks[1][0].fn[0].weight.detach())
    assert torch.allclose(learned.covariances[1], expected)
    assert "convmixer-8/3" in learned.source


def test_wrong_architecture_is_named():
    _, state = tiny_convmixer_state()
    with pytest.raises(ValueError, match="does not fit timm:convnext_atto"):
        learned_sets.learned_from_state_dict(state, "timm:convnext_atto", "x.pt")
    with pytest.raises(ValueError, match="does not have a ConvMixer's layout"):
        learned_sets.learned_from_state_dict({"fc.weight": torch.zeros(2, 2)}, "convmixer", "x.pt")
    broken = dict(state)
    broken["blocks.1.1.weight"] = torch.zeros(3, 3, 1, 1)
    with pytest.raises(ValueError, match="different architecture"):
        learned_sets.learned_from_state_dict(broken, "convmixer", "x.pt")


@pytest.mark.parametrize("in_chans", [3, 1])  # a grayscale stem (40 x 1 x 4 x 4) is not a depthwise layer
def test_timm_convnext_checkpoint_gives_one_covariance_per_block(in_chans):
    model = models.build_model("timm:convnext_atto", num_classes=3, in_chans=in_chans)
    learned = learned_sets.learned_from_state_dict(model.state_dict(), "timm:convnext_atto", "atto.pt")
    assert learned.depth == 12 and learned.kernel_size == 7  # 2 + 2 + 6 + 2 blocks


class Payload:
    """Unpickling this would create a file (the attack a checkpoint upload must not allow)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_checkpoint_bytes_good_malicious_truncated_empty_oversized(tmp_path):
    _, state = tiny_convmixer_state()
    good = save_safetensors(state)
    assert learned_sets.learned_from_checkpoint(good, "mine.safetensors", "convmixer").depth == 3
    marker = tmp_path / "pwned"
    with pytest.raises(ValueError, match="arbitrary Python objects.*not executed"):
        learned_sets.learned_from_checkpoint(malicious_checkpoint(marker), "evil.pt", "convmixer")
    assert not marker.exists()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with pytest.raises(ValueError, match="cut.pt is truncated"):
        learned_sets.learned_from_checkpoint(buffer.getvalue()[: len(buffer.getvalue()) // 2], "cut.pt", "convmixer")
    with pytest.raises(ValueError, match="empty.pt is empty"):
        learned_sets.learned_from_checkpoint(b"", "empty.pt", "convmixer")
    with pytest.raises(ValueError, match="big.safetensors is .* over the 1.0 KiB limit"):
        learned_sets.learned_from_checkpoint(good, "big.safetensors", "convmixer", max_bytes=1024)
    with pytest.raises(ValueError, match="notes.txt is not a checkpoint"):
        learned_sets.learned_from_checkpoint(b"hello world, no weights here", "notes.txt", "convmixer")


def test_covariance_sets_round_trip_and_bad_names(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))
    covs = [covariance.gaussian(5, s) for s in (1.0, 2.0, 3.0)]
    learned_sets.save_covariance_set("my set-1", covs, source="run #3")
    (learned_sets.covariance_sets_dir() / "junk.safetensors").write_bytes(b"not a file")
    assert learned_sets.list_covariance_sets() == [learned_sets.CovarianceSetInfo("my set-1", 5, 3, "run #3")]
    loaded = learned_sets.load_covariance_set("my set-1")
    assert all(torch.allclose(a, b) for a, b in zip(loaded, covs))
    assert lab.covariance_set_label(learned_sets.list_covariance_sets()[0]) == "set: my set-1 (5 × 5, 3 layers)"
    for bad in ("", "../escape", "a/b", "x" * 61):
        with pytest.raises(ValueError, match="covariance set name"):
            learned_sets.save_covariance_set(bad, covs, source="")
    with pytest.raises(ValueError, match="no covariance set named"):
        learned_sets.load_covariance_set("missing")


def test_learned_set_from_a_run_and_figures():
    run = _run("gaussian", "gaussian", 0, 80.0)
    run.id, run.layer_names = 4, ["blocks.0", "blocks.1"]
    run.covariances = [covariance.gaussian(5, 1.0), covariance.gaussian(5, 2.0)]
    learned = learned_sets.learned_from_run(run)
    assert learned.source.startswith("run #4") and "80.0%" in learned.source
    fits = learned_sets.layer_fits(learned.covariances)
    grid = learned_figures.layer_grid_figure(learned.covariances, ["a", "b"])
    assert [a.text for a in grid.layout.annotations] == ["a", "b"]
    assert len(learned_figures.sigma_depth_figure(fits, [1.0, 2.0], fitted_line=(1.0, 2.0)).data) == 3
    S, closed, diff = learned_sets.closed_form_beside(learned.covariances[1], fits[1]["sigma"])
    pair = learned_figures.closed_form_figure(S, closed, diff, sigma=2.0, r=1.0, layer="2")
    assert [t.type for t in pair.data] == ["heatmap"] * 3
    run.covariances = []
    with pytest.raises(ValueError, match=r"saved no covariances \(its filters were not finite"):
        learned_sets.learned_from_run(run)
    run.layer_names, run.config = [], run.config.replace(model="cnn-4")
    with pytest.raises(ValueError, match=r"saved no covariances \(cnn-4 has no depthwise filters\)"):
        learned_sets.learned_from_run(run)


# -- the job manager keeps the finished runs of a cancelled comparison -------------------------


def test_cancelled_comparison_keeps_and_saves_its_finished_runs(tmp_path):
    manager = JobManager(max_jobs=1, store=RunStore(tmp_path / "runs.db"))
    plan = lab.plan_comparison(dataclasses.replace(TINY, n_seeds=3))
    job = manager.submit("compare", plan.base.replace(max_steps=2), variants=plan.variants, seeds=plan.seeds,
                         references=plan.references, ensemble=False)  # together, a cancel stops every run
    while not any(e.kind == "done" for e in manager.events(job)):
        assert manager.status(job).running, manager.status(job).message
        time.sleep(0.05)
    manager.cancel(job)
    status = manager.wait(job, 120)
    assert status.state == "cancelled" and status.result_id is not None
    saved = manager.store.get_comparison(status.result_id)
    assert saved.status == "cancelled" and 1 <= sum(len(r) for r in saved.runs.values()) < 6


def test_every_cpu_preset_says_how_long_it_took_where_it_was_timed():
    for name, preset in lab.PRESETS.items():
        if "GPU" in name:
            assert preset.took_s is None and lab.preset_time_text(preset) is None
            continue
        assert preset.took_s > 0, name
        assert f"this preset took about {lab.duration(preset.took_s)}" in lab.preset_time_text(preset)
        assert lab.PRESET_TIMES_WHERE in lab.preset_time_text(preset)
