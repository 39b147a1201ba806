"""The ensemble where runs are trained: compare() and `compare --no-ensemble`, the sweep executors
(a cell's trials handed to one worker as one batch, each stored once) and the Training Lab train
compatible runs together, each ending as its lone run does (helpers.ensemble's tolerances), with
progress events that say so; switched off, they train one after another."""

import dataclasses
import json

import pytest

import convcov_core.compare as compare_module
from convcov_app import lab
from convcov_core.cli import main
from convcov_core.compare import compare
from convcov_core.ensemble import pays_off
from convcov_core.sweep import LocalPool, Sweep, SweepStore, run_sweep
from convcov_core.sweep.worker import trial_batches
from helpers.ensemble import LOSS_TOL, ONE_IMAGE, assert_same_run, bars, events_by_run

VARIANTS = {"default": {"init": "default"}, "gaussian-frozen": {"init": "gaussian", "freeze_filters": True}}
BARS_ARGS = ["--dataset", "noisy-bars", "--dataset-param", "n_train=96", "--dataset-param", "n_test=64",
             "--model", "convmixer-16/2", "--kernel-size", "5", "--patch-size", "4", "--epochs", "2",
             "--batch-size", "32", "--device", "cpu", "--precision", "fp32", "--inits", "default,gaussian",
             "--seeds", "0,1"]


@pytest.fixture(scope="module")
def both_ways():
    """The same comparison with the ensemble (the default) and without: (result, events) each."""
    out = {}
    for ensemble in (True, False):
        events = []
        out[ensemble] = compare(bars(), VARIANTS, [0, 1], events.append, ensemble=ensemble), events
    return out


def test_compare_trains_the_runs_as_one_ensemble_equal_to_one_after_another(both_ways):
    (together, together_events), (alone, alone_events) = both_ways[True], both_ways[False]
    assert together.status == alone.status == "ok"
    for name in VARIANTS:
        for member, lone in zip(together.runs[name], alone.runs[name], strict=True):
            assert member.config.seed == lone.config.seed and member.variant == lone.variant == name
            assert_same_run(member, lone)
    for row, lone_row in zip(together.rows, alone.rows):
        assert row["per_seed"] == pytest.approx(lone_row["per_seed"], abs=ONE_IMAGE)
    # the same events per run, labelled as separate runs, which also say that they train together
    assert events_by_run(together_events) == events_by_run(alone_events)
    assert {(e.together, e.position) for e in together_events} == {(4, i) for i in range(4)}
    assert all(e.position == e.run_index for e in together_events)
    assert {(e.together, e.position) for e in alone_events} == {(1, 0)}


def test_on_the_cpu_runs_train_one_after_another_unless_asked():
    assert not pays_off(bars())  # measured slower there: docs/performance.md
    events = []
    compare(bars(max_steps=1, epochs=1, keep_state_dict=False), VARIANTS, [0], events.append)
    assert {e.together for e in events} == {1}


def test_progress_of_runs_trained_together_counts_every_run_at_its_step(both_ways):
    events = [e for e in both_ways[True][1] if e.kind == "step"]
    assert [e.fraction_done() for e in events[:4]] == [pytest.approx(1 / 6)] * 4  # step 1 of 6, all four runs
    assert events[-1].fraction_done() == 1.0
    assert list(events[0].group) == [0, 1, 2, 3]
    alone = [e for e in both_ways[False][1] if e.kind == "step"]
    assert alone[0].fraction_done() == pytest.approx(1 / 24) and alone[6].fraction_done() == pytest.approx(7 / 24)


def test_cli_compare_trains_together_unless_no_ensemble(tmp_path, capsys):
    docs = {}
    for flag in ("--ensemble", "--no-ensemble"):
        path = tmp_path / f"cmp{flag}.json"
        assert main(["compare", *BARS_ARGS, flag, "--json", str(path)]) == 0
        err = capsys.readouterr().err
        together_lines = [line for line in err.splitlines() if "together" in line]
        assert bool(together_lines) == (flag == "--ensemble"), err
        docs[flag == "--no-ensemble"] = json.loads(path.read_text())
    assert "run 1/4 default seed 0: test" in err  # without the ensemble: one line per run as it ends
    for name in ("default", "gaussian"):
        for member, lone in zip(docs[False]["runs"][name], docs[True]["runs"][name], strict=True):
            assert member["history"]["loss"] == pytest.approx(lone["history"]["loss"], abs=LOSS_TOL)
            assert member["final"]["test_acc"] == pytest.approx(lone["final"]["test_acc"], abs=ONE_IMAGE)


def test_cli_help_names_the_switch(capsys):
    for argv in (["compare", "--help"], ["sweep", "run", "--help"], ["sweep", "resume", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "--no-ensemble" in capsys.readouterr().out, argv


def grid(name: str, seeds=(0, 1), axes=None) -> Sweep:
    base = bars(keep_state_dict=False, epochs=1)
    return Sweep(name, base, dict(axes or {}), ["default", "gaussian"], list(seeds))


def test_trial_batches_hand_a_cells_trials_out_together_and_keep_every_slot_busy():
    trials = grid("b", seeds=(0, 1, 2), axes={"kernel_size": [3, 5]}).trials()
    cells = [sorted({t.cell for t in batch}) for batch in trial_batches(trials, 2, ensemble=True)]
    assert cells == [[(3,)], [(5,)]]  # 6 trials each: one batch per cell for two workers
    one_cell = [t for t in trials if t.cell == (3,)]
    assert [len(batch) for batch in trial_batches(one_cell, 2, ensemble=True)] == [3, 3]  # two workers: halves
    assert [len(b) for b in trial_batches(trials, 2, ensemble=False)] == [1] * 12
    assert [len(b) for b in trial_batches(trials, 2)] == [1] * 12  # the default on the CPU: one at a time


def running_before_first_done(events) -> int:
    """How many trials had reported a step before the first one was stored."""
    first_done = next(i for i, e in enumerate(events) if e.kind == "done")
    return len({e.trial.key for e in events[:first_done] if e.kind == "running"})


def test_a_sweep_cell_trains_as_one_ensemble_and_stores_each_trial_once(tmp_path):
    store, events = SweepStore(tmp_path / "runs.db"), []
    together, alone = grid("together"), grid("alone")
    outcome = run_sweep(together, store, LocalPool(1, ensemble=True), events.append)
    assert (outcome.ran, outcome.failed) == (4, 0)
    found = store.finished(t.key for t in together.trials())
    assert len(found) == 4 and len({r["run_id"] for r in found.values()}) == 4
    assert running_before_first_done(events) == 4  # one worker, all four trials training at once
    # the same trials one after another (a fresh store: the first one holds them under their keys)
    other, events = SweepStore(tmp_path / "alone.db"), []
    run_sweep(alone, other, LocalPool(1, ensemble=False), events.append)
    assert running_before_first_done(events) == 1
    for trial in together.trials():
        member = store.runs.get(found[trial.key]["run_id"])
        single = other.runs.get(other.finished([trial.key])[trial.key]["run_id"])
        assert member.history["loss"] == pytest.approx(single.history["loss"], abs=LOSS_TOL)
        assert member.final["test_acc"] == pytest.approx(single.final["test_acc"], abs=ONE_IMAGE)
    assert run_sweep(together, store, LocalPool(1, ensemble=True)).ran == 0  # resumed: nothing left to run


def test_the_labs_estimate_times_its_runs_together_unless_told_not_to(monkeypatch):
    timed = []
    estimate = compare_module.ensemble_time  # ensemble.estimate_time, as compare_seconds calls it
    monkeypatch.setattr(compare_module, "ensemble_time",
                        lambda configs, n: timed.append(configs) or estimate(configs, n))
    setup = lab.LabSetup(bars(max_steps=4, epochs=1, keep_state_dict=False), n_seeds=2, ensemble=True)
    assert lab.estimate_seconds(lab.plan_comparison(setup), n_steps=1) > 0
    assert [(c.seed, c.init) for c in timed[0]] == [(0, "default"), (0, "gaussian"), (1, "default"), (1, "gaussian")]
    assert lab.estimate_seconds(lab.plan_comparison(dataclasses.replace(setup, ensemble=False)), n_steps=1) > 0
    assert len(timed) == 1
