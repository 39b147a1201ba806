"""Sweeps on this machine: the grid and its keys, the store, the local pool, resuming, failures, and
the faults (a worker killed, the driver killed, two drivers at once, a cancel)."""

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from convcov_core import settings, stats
from convcov_core.cli import build_parser, main
from convcov_core.cli.sweep import _grid
from convcov_core.sweep import (
    LocalPool,
    Sweep,
    SweepStore,
    cell_effects,
    parse_values,
    run_sweep,
    trial_key,
    trial_table,
    write_table,
)
from convcov_core.train import TrainConfig
from convcov_core.train import config as config_module
from helpers.runs import fake_run

TINY = TrainConfig(model="convmixer-8/1", kernel_size=3, epochs=1, max_steps=2, batch_size=16)
TINY_FLAGS = ["--model", "convmixer-8/1", "--epochs", "1", "--batch-size", "16"]


def grid(name="g", axes=None, inits=("default", "gaussian"), seeds=(0, 1), base=TINY) -> Sweep:
    return Sweep(name, base, dict(axes if axes is not None else {"kernel_size": [3, 5]}), list(inits), list(seeds))


def stored_runs(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def assert_each_trial_once(sweep: Sweep, store: SweepStore) -> None:
    """Every trial of the sweep is in the store, and the store holds no other run."""
    found = store.finished(t.key for t in sweep.trials())
    assert len(found) == sweep.n_trials
    assert stored_runs(store.runs.path) == sweep.n_trials
    assert len({r["run_id"] for r in found.values()}) == sweep.n_trials


# -- the grid ---------------------------------------------------------------------------------------


def test_a_grid_expands_to_every_combination_seed_by_seed():
    sweep = grid(axes={"kernel_size": [3, 5], "freeze_filters": [False, True]}, seeds=[0, 1, 2]).validate()
    trials = sweep.trials()
    assert sweep.n_cells == 4 and sweep.n_trials == len(trials) == 4 * 2 * 3
    assert len({t.key for t in trials}) == len(trials)
    assert [t.seed for t in trials[:8]] == [0] * 8  # each seed's round covers every cell and scheme first
    assert {(t.cell, t.init, t.seed) for t in trials} == {
        ((k, f), i, s) for k in (3, 5) for f in (False, True) for i in ("default", "gaussian") for s in (0, 1, 2)}
    for t in trials:
        assert (t.config.kernel_size, t.config.freeze_filters) == t.cell


def test_a_trial_key_is_its_complete_config_and_nothing_else():
    key = trial_key(TINY)
    assert key == trial_key(TrainConfig.from_dict(TINY.to_dict()))
    assert key == trial_key(TINY.replace(threads=3, keep_state_dict=True, data_root="/elsewhere"))
    for change in ({"seed": 1}, {"lr": 0.02}, {"kernel_size": 5}, {"init": "gaussian"}, {"dataset": "textures"},
                   {"dataset_params": {"noise": 0.5}}, {"freeze_filters": True}, {"max_steps": 3}):
        assert trial_key(TINY.replace(**change)) != key, change


def _frozen_trial_key(config: TrainConfig) -> str:
    """trial_key as it was when the first trials were stored (a copy that never changes)."""
    payload = {k: v for k, v in config.to_dict().items()
               if k not in ("threads", "keep_state_dict", "data_root", "n_covariances")}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode())
    for cov in config.covariances or []:
        digest.update(cov.double().contiguous().numpy().tobytes())
    return "trial:" + digest.hexdigest()[:32]


def test_every_key_stored_so_far_is_still_the_key_of_its_config():
    """Keys as written by the code that stored the first sweeps (these literals were computed by it)."""
    learned = TINY.replace(init="learned", covariances=[torch.eye(9, dtype=torch.float64)], seed=3,
                           dataset_params={"noise": 0.5})
    assert trial_key(TINY) == "trial:6c380a5f0a4019e1c2eaa1b662292142"
    assert trial_key(learned) == "trial:25be2e882be74708b7b6a08412fefdda"
    assert trial_key(TrainConfig()) == "trial:8832158fa467f110c270050b4796009e"
    for trial in grid(axes={"kernel_size": [3, 5], "lr": [0.01, 0.1], "sigma_first": [None, 0.5]}).trials():
        assert trial.key == _frozen_trial_key(trial.config)


def with_new_field(default=0, before=0):
    """TrainConfig with one more field, as a change to config.py would add it: warmup_steps (a sweep axis
    with a flag and a range), default `default`, trained as runs were before it existed at `before`."""
    return dataclasses.make_dataclass("TrainConfig", [(
        "warmup_steps", int, dataclasses.field(default=default, metadata=config_module.setting(
            "steps of linear learning-rate warm-up", int, low=0, high=10**6, axis=True, flag="--warmup-steps",
            before=before)))], bases=(TrainConfig,))


def test_a_field_added_at_the_value_runs_had_before_it_does_not_change_a_key():
    Extended = with_new_field()
    old = TINY.to_dict()
    same = Extended.from_dict(old)  # a config stored before the field existed, read now
    assert same.warmup_steps == 0 and same.validate() is same
    assert trial_key(same) == trial_key(Extended(**{**TINY.__dict__, "warmup_steps": 0})) == trial_key(TINY)
    assert trial_key(same.replace(warmup_steps=5)) != trial_key(TINY)
    assert same.canonical_dict() == {**old}  # the new field, at 0, left out
    assert config_module.canonical(same.to_dict(), Extended) == config_module.canonical(old, Extended)


def test_a_field_whose_default_is_new_behaviour_keeps_old_configs_at_the_old_behaviour():
    """A field added with a default that trains differently (before=0, default 100): a stored config
    reads back at 0 and keeps its key; a new config at the default is a new trial."""
    Extended = with_new_field(default=100, before=0)
    assert Extended.from_dict(TINY.to_dict()).warmup_steps == 0
    assert trial_key(Extended.from_dict(TINY.to_dict())) == trial_key(TINY)
    assert trial_key(Extended(**TINY.__dict__)) != trial_key(TINY)


@pytest.mark.parametrize("field, text, values", [
    ("kernel_size", "5,9,15", [5, 9, 15]), ("seed", "0-3", [0, 1, 2, 3]), ("lr", "0.01, 0.1", [0.01, 0.1]),
    ("freeze_filters", "false,true", [False, True]), ("model", "convmixer-8/1,convmixer-8/2",
                                                       ["convmixer-8/1", "convmixer-8/2"])])
def test_axis_values_are_read_as_their_field_says(field, text, values):
    assert parse_values(field, text) == values


@pytest.mark.parametrize("field, text", [("kernel_size", "5,,9"), ("kernel_size", "nine"), ("seed", "9-3"),
                                         ("lr", "fast"), ("freeze_filters", "maybe"), ("epochs", " ")])
def test_bad_axis_values_are_refused(field, text):
    with pytest.raises(ValueError, match=field):
        parse_values(field, text)


@pytest.mark.parametrize("change, message", [
    ({"axes": {"colour": [1, 2]}}, "unknown sweep axis 'colour'"),
    ({"axes": {"seed": [1, 2]}}, "unknown sweep axis 'seed'"),
    ({"axes": {"kernel_size": []}}, "axis kernel_size has no values"),
    ({"axes": {"kernel_size": [3, 3]}}, "lists 3 more than once"),
    ({"axes": {"kernel_size": [4]}}, "not an odd kernel size"),
    ({"axes": {"kernel_size": [99]}}, "not an odd kernel size from 1 to 51"),
    ({"axes": {"lr": [-1.0]}}, "axis lr: lr must be a finite number in (0, 10]"),
    ({"axes": {"sigma_first": [1.0, 1e12]}}, "axis sigma_first: sigma_first must be a finite number in (0, 100]"),
    ({"inits": []}, "the init schemes has no values"),
    ({"inits": ["default", "nope"]}, "unknown init scheme 'nope'"),
    ({"inits": ["default", "learned"]}, "learned scheme needs covariances"),
    ({"seeds": [0, 0]}, "lists 0 more than once"),
    ({"name": "../x"}, "sweep name"),
    ({"seeds": list(range(1_000_000))}, "4,000,000 trials"),
])
def test_a_bad_grid_is_refused_before_anything_runs(change, message):
    values = {"name": "g", "axes": {"kernel_size": [3, 5]}, "inits": ["default", "gaussian"], "seeds": [0, 1]}
    values.update(change)
    sweep = Sweep(values["name"], TINY, values["axes"], values["inits"], values["seeds"])
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        sweep.validate()


def test_the_trial_cap_is_a_setting(monkeypatch):
    monkeypatch.setenv("CONVCOV_MAX_SWEEP_TRIALS", "7")
    assert settings.max_sweep_trials() == 7
    with pytest.raises(ValueError, match="more than the 7 a sweep may have"):
        grid().validate()


# -- running, storing, resuming ---------------------------------------------------------------------


def test_a_sweep_runs_on_the_pool_stores_each_trial_once_and_resumes_without_rerunning(tmp_path):
    store, sweep, events = SweepStore(tmp_path / "runs.db"), grid(), []
    outcome = run_sweep(sweep, store, LocalPool(2), events.append)
    assert (outcome.ran, outcome.skipped, outcome.failed, outcome.cancelled) == (8, 0, 0, False)
    assert_each_trial_once(sweep, store)
    kinds = [e.kind for e in events]
    assert kinds.count("queued") == 8 and kinds.count("done") == 8 and "running" in kinds
    finished = [e for e in events if e.kind == "done"]
    assert [e.n_finished for e in finished] == list(range(1, 9))
    assert all(e.eta_s is not None for e in finished) and finished[-1].eta_s == 0
    again = run_sweep(sweep, store, LocalPool(1))
    assert (again.ran, again.skipped) == (0, 8)
    assert stored_runs(store.runs.path) == 8


def test_the_pool_gives_the_same_numbers_as_training_here(tmp_path):
    """A trial trained in a pool worker (one thread) equals the same config trained in this process."""
    from convcov_core.train import train
    store, sweep = SweepStore(tmp_path / "runs.db"), grid(axes={}, seeds=[3], inits=["gaussian"])
    run_sweep(sweep, store, LocalPool(1))
    (trial,) = sweep.trials()
    here = train(trial.config.replace(threads=1))
    assert store.finished([trial.key])[trial.key]["final"]["test_acc"] == here.final["test_acc"]


def test_sweeps_that_share_trials_share_their_runs_and_deleting_one_keeps_the_shared(tmp_path):
    store = SweepStore(tmp_path / "runs.db")
    first, second = grid("first", seeds=[0]), grid("second", axes={"kernel_size": [5, 7]}, seeds=[0])
    run_sweep(first, store, LocalPool(2))
    outcome = run_sweep(second, store, LocalPool(2))
    assert (outcome.skipped, outcome.ran) == (2, 2)  # k = 5 was run by the first sweep
    assert stored_runs(store.runs.path) == 6
    assert store.delete("first") == 2  # k = 3; k = 5 stays for the second sweep
    assert_each_trial_once(second, store)
    with pytest.raises(ValueError, match="no sweep called 'first'"):
        store.get("first")


def test_a_name_is_one_grid(tmp_path):
    store = SweepStore(tmp_path / "runs.db")
    sweep = grid(seeds=[0], axes={})
    run_sweep(sweep, store, LocalPool(1))
    with pytest.raises(ValueError, match="already exists with another grid; `sweep resume g`"):
        run_sweep(grid(seeds=[0, 1], axes={}), store, LocalPool(1))
    assert store.get("g").to_dict() == sweep.to_dict()


NEW_FIELD = ("    warmup_steps: int = _field(0, \"steps of linear learning-rate warm-up\", int, low=0, high=10**6, "
             "axis=True, flag=\"--warmup-steps\", before=0)\n")
AFTER_THE_FIELD = (
    "import contextlib, io, json, sys\n"
    "from convcov_core.cli import main\n"
    "from convcov_core.cli.sweep import AXIS_FLAGS\n"
    "from convcov_core.sweep import SweepStore\n"
    "def call(*argv):\n"
    "    out, err = io.StringIO(), io.StringIO()\n"
    "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
    "        try:\n"
    "            rc = main(list(argv))\n"
    "        except SystemExit as exc:\n"
    "            rc = exc.code\n"
    "    return rc, out.getvalue(), err.getvalue()\n"
    "db, flags = sys.argv[1], json.loads(sys.argv[2])\n"
    "print(json.dumps({'resume': call('sweep', 'resume', 'old', '--db', db, '--workers', '1', '--quiet'),\n"
    "                  'run': call('sweep', 'run', *flags),\n"
    "                  'show': call('sweep', 'show', 'old', '--db', db),\n"
    "                  'base': SweepStore(db).get('old').base.to_dict(),\n"
    "                  'help': call('compare', '--help')[1], 'sweep_help': call('sweep', 'run', '--help')[1],\n"
    "                  'axis': AXIS_FLAGS.get('--warmup-steps'),\n"
    "                  'refused': call('compare', '--warmup-steps', '-1')}))\n")


def test_a_sweep_stored_before_a_field_was_added_resumes_with_nothing_trained(tmp_path):
    """The store is written by today's code; then one field is added to TrainConfig in a copy of the
    package (as a change to config.py would) and that copy resumes the finished sweep, and runs it
    again by name and flags: every trial is found under its stored key, nothing trains. The new
    field is a compare option with its range and a sweep axis by itself."""
    db = tmp_path / "runs.db"
    flags = ["--name", "old", *TINY_FLAGS, "--max-steps", "2", "--kernel-size", "3,5", "--seeds", "0", "--db", str(db)]
    sweep = _grid(build_parser().parse_args(["sweep", "run", *flags]))
    store = SweepStore(db)
    trials = sweep.trials()
    store.register(sweep, trials)
    for trial in trials:  # finished as far as the store can tell; these runs were not trained
        result = fake_run(seed=trial.seed, k=trial.config.kernel_size, init=trial.init)
        result.config = trial.config
        store.save(trial, result, sweep.name)
    assert len(store.finished(t.key for t in trials)) == 4 == stored_runs(db)

    package = tmp_path / "later" / "convcov_core"
    shutil.copytree(Path(__file__).resolve().parents[1] / "convcov_core", package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    config_py = package / "train" / "config.py"
    source = config_py.read_text()
    assert source.count("\n\n    def validate(self)") == 1
    config_py.write_text(source.replace("\n\n    def validate(self)", "\n" + NEW_FIELD + "\n    def validate(self)"))
    env = {**os.environ, "PYTHONPATH": str(package.parent), "CONVCOV_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", AFTER_THE_FIELD, str(db), json.dumps(flags)], cwd=package.parent,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    later = json.loads(proc.stdout)
    assert later["base"]["warmup_steps"] == 0  # the copy has the field; the stored sweep reads back at 0
    for what in ("resume", "run"):
        rc, out, err = later[what]
        assert rc == 0, err
        assert "4 already in" in err and "ran 0 trial(s) (0 failed), 4 found stored" in err, err
    assert later["show"][0] == 0 and "4 ok" in later["show"][1]
    assert stored_runs(db) == 4
    assert "--warmup-steps" in later["help"] and "in [0, 1000000]" in later["help"]
    assert "--warmup-steps" in later["sweep_help"] and later["axis"] == "warmup_steps"
    rc, _, err = later["refused"]
    assert rc == 2 and err.count("\n") == 1 and "warmup_steps must be a whole number in [0, 1000000]" in err


def test_a_trial_that_fails_or_diverges_is_recorded_once_and_not_retried(tmp_path):
    store = SweepStore(tmp_path / "runs.db")
    sweep = grid(axes={"model": ["convmixer-8/1", "timm:no_such_model"], "lr": [0.01, 10]}, seeds=[0],
                 inits=["default"], base=TINY.replace(schedule="constant", max_steps=12, weight_decay=10))
    outcome = run_sweep(sweep, store, LocalPool(2))
    assert outcome.ran == 4
    table = trial_table(sweep, store).set_index(["model", "lr"])
    assert table.loc[("convmixer-8/1", 0.01), "status"] == "ok"
    assert table.loc[("convmixer-8/1", 10), "status"] == "diverged"  # weights x (1 - 10 x 10) per step
    for lr in (0.01, 10):
        assert table.loc[("timm:no_such_model", lr), "status"] == "failed"
        assert "no_such_model" in table.loc[("timm:no_such_model", lr), "message"]
    assert outcome.failed == 3
    assert run_sweep(sweep, store, LocalPool(1)).ran == 0  # failures are results: not run again


def test_a_cancelled_sweep_keeps_what_finished_and_resumes(tmp_path):
    store, sweep = SweepStore(tmp_path / "runs.db"), grid(seeds=[0, 1, 2])
    done = []
    outcome = run_sweep(sweep, store, LocalPool(1), lambda e: done.append(e) if e.kind == "done" else None,
                        should_stop=lambda: len(done) >= 2)
    assert outcome.cancelled and 2 <= outcome.ran < sweep.n_trials
    assert stored_runs(store.runs.path) == outcome.ran
    rest = run_sweep(sweep, store, LocalPool(2))
    assert rest.skipped == outcome.ran and rest.ran == sweep.n_trials - outcome.ran
    assert_each_trial_once(sweep, store)


def test_a_pool_worker_killed_mid_trial_loses_and_duplicates_nothing(tmp_path):
    """kill -9 of a worker process while it trains: its trial is run again, every trial is stored once."""
    store = SweepStore(tmp_path / "runs.db")
    sweep = grid(base=TINY.replace(max_steps=40, model="convmixer-16/2"), seeds=[0, 1])
    killed = []

    def kill_a_worker(event):
        if event.kind == "running" and not killed:
            victim = multiprocessing.active_children()[0]
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    outcome = run_sweep(sweep, store, LocalPool(2), kill_a_worker)
    assert killed and outcome.ran == sweep.n_trials and outcome.failed == 0
    assert_each_trial_once(sweep, store)


# -- results -----------------------------------------------------------------------------------------


def test_the_effect_of_a_cell_is_the_paired_verdict_of_its_seeds(tmp_path):
    store, sweep = SweepStore(tmp_path / "runs.db"), grid(seeds=[0, 1, 2])
    run_sweep(sweep, store, LocalPool(2))
    table = trial_table(sweep, store)
    assert list(table.columns[:2]) == ["kernel_size", "depth"] and len(table) == 12
    assert set(table["status"]) == {"ok"} and table["depth"].eq(1).all()
    effects = cell_effects(sweep, table)
    assert list(effects["kernel_size"]) == [3, 5] and set(effects["scheme"]) == {"gaussian"}
    for row in effects.to_dict("records"):
        cell = table[table["kernel_size"] == row["kernel_size"]]
        acc = {init: cell[cell["init"] == init].set_index("seed")["test_acc"] for init in ("gaussian", "default")}
        verdict = stats.paired_verdict(list(acc["gaussian"][[0, 1, 2]]), list(acc["default"][[0, 1, 2]]))
        assert (row["n"], row["diff_mean"], row["diff_low"], row["diff_high"]) == (
            3, verdict.mean, verdict.low, verdict.high)
        assert row["seeds_needed"] == stats.seeds_needed(verdict.mean, verdict.std)
    raw = cell_effects(sweep, table, "test_acc_raw")
    assert list(raw["mean"]) != list(effects["mean"])
    csv, js = write_table(table, tmp_path / "t.csv"), write_table(effects, tmp_path / "e.json")
    assert len(pd.read_csv(csv)) == 12 and len(pd.read_json(js)) == 2
    with pytest.raises(ValueError, match=r"\.csv or \.json"):
        write_table(table, tmp_path / "t.xlsx")


def test_seeds_needed_follows_the_t_test_sample_size():
    assert stats.seeds_needed(1.0, 0.0) == 2
    assert stats.seeds_needed(1.0, None) is None and stats.seeds_needed(0.0, 1.0) is None
    n = stats.seeds_needed(1.0, 2.5)
    assert n > 2 and stats.seeds_needed(1.0, 2.5) == stats.seeds_needed(-1.0, 2.5)
    half = lambda m: (stats.t_quantile(m) + stats._scipy.t.ppf(stats.POWER, m - 1)) * 2.5 / m ** 0.5  # noqa: E731
    assert half(n) <= 1.0 < half(n - 1)
    assert stats.seeds_needed(2.0, 2.5) < n < stats.seeds_needed(0.5, 2.5)


# -- the command line, and killing its driver -------------------------------------------------------


def sweep_cli(db, *args, **popen):
    command = [sys.executable, "-m", "convcov_core", "sweep", *args, "--db", str(db)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_cli_bad_grids_get_one_line_and_exit_2_before_anything_is_written(tmp_path, capsys):
    db = tmp_path / "runs.db"
    for bad in (["--kernel-size", "3,4"], ["--seeds", "0-999999"], ["--inits", "default,nope"],
                ["--lr", "0.1,-1"], ["--freeze", "all"], ["--epochs", "1,,2"], ["--name", "a b"]):
        args = ["sweep", "run", "--name", "bad", *TINY_FLAGS, "--db", str(db), *bad]
        assert main(args) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("convcov: error:") and err.count("\n") == 1, err
    assert not db.exists()


def test_cli_run_show_list_delete(tmp_path, capsys):
    db = tmp_path / "runs.db"
    args = ["sweep", "run", "--name", "cli", *TINY_FLAGS, "--max-steps", "2", "--kernel-size", "3,5",
            "--freeze", "none,filters", "--seeds", "0-1", "--workers", "2", "--db", str(db), "--quiet"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "16 trials (4 cell(s) x 2 scheme(s) x 2 seed(s)), 0 already in" in err
    assert "estimate: about" in err and "executor: local pool" in err
    assert out.count("gaussian") == 4 and "95% interval" in out
    assert main(["sweep", "show", "cli", "--db", str(db), "--csv", str(tmp_path / "t.csv")]) == 0
    assert "16 ok" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "t.csv")) == 16 and len(pd.read_csv(tmp_path / "t.effects.csv")) == 4
    assert main(["sweep", "list", "--db", str(db)]) == 0
    assert "cli" in capsys.readouterr().out
    assert main(["sweep", "delete", "cli", "--db", str(db)]) == 0
    assert stored_runs(db) == 0
    assert main(["sweep", "show", "cli", "--db", str(db)]) == 2


def test_driver_killed_mid_sweep_then_resume_runs_only_the_rest(tmp_path):
    """kill -9 of the CLI driver and its workers once some trials are stored; `sweep resume` runs the
    others, and every trial is in the store exactly once (three cells of six trials, each cell's
    trials trained together: the third starts after the first two are stored)."""
    db = tmp_path / "runs.db"
    driver = sweep_cli(db, "run", "--name", "killed", *TINY_FLAGS, "--max-steps", "20", "--kernel-size", "3,5,7",
                       "--seeds", "0-2", "--workers", "2", start_new_session=True)
    store = SweepStore(db)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if len(store.finished(store.keys("killed"))) >= 2:
                break
        except ValueError:  # the sweep is not registered yet
            pass
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(30)
    before = stored_runs(db)
    assert 2 <= before < 18
    resumed = sweep_cli(db, "resume", "killed", "--workers", "2")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"ran {18 - before} trial(s) (0 failed), {before} found stored" in err
    assert_each_trial_once(store.get("killed"), store)


def group_members(pgid: int) -> dict[int, str]:
    """The live processes of process group `pgid` (zombies left out): pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        state, _, group = stat[stat.rindex(")") + 2:].split()[:3]
        if int(group) == pgid and state not in ("Z", "X"):
            found[int(entry.name)] = command
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process group from /proc")
def test_a_driver_killed_alone_leaves_no_worker_or_resource_tracker(tmp_path):
    """kill -9 of the driver's pid alone (a crash, the OOM killer) while its workers train: 30 s later
    no worker of its pool and no resource tracker is alive (they used to wait in a pipe read forever,
    about 1 GB each). The driver runs in its own process group, killed whole at the end."""
    err = tmp_path / "driver.err"
    with err.open("w") as stderr:
        driver = subprocess.Popen([sys.executable, "-m", "convcov_core", "sweep", "run", "--name", "orphans",
                                   *TINY_FLAGS, "--max-steps", "300", "--kernel-size", "3", "--seeds", "0-1",
                                   "--workers", "2", "--db", str(tmp_path / "runs.db")],
                                  stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while " running " not in err.read_text() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert driver.poll() is None and " running " in err.read_text(), err.read_text()
        before = group_members(driver.pid)
        assert sum("spawn_main" in c for c in before.values()) == 2, before
        assert any("resource_tracker" in c for c in before.values()), before
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
        deadline = time.monotonic() + 30
        while group_members(driver.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert group_members(driver.pid) == {}, "left running after the driver died"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)


def test_two_drivers_sharing_trials_at_once_store_each_once(tmp_path):
    db = tmp_path / "runs.db"
    common = [*TINY_FLAGS, "--max-steps", "1", "--seeds", "0", "--workers", "1", "--quiet"]
    drivers = [sweep_cli(db, "run", "--name", "a", "--kernel-size", "3,5", *common),
               sweep_cli(db, "run", "--name", "b", "--kernel-size", "5,7", *common)]
    for driver in drivers:
        assert driver.wait(600) == 0, driver.stderr.read()
    store = SweepStore(db)
    keys = set(store.keys("a")) | set(store.keys("b"))
    assert len(keys) == 6 and stored_runs(db) == 6  # k = 5 is in both grids
    assert len(store.finished(keys)) == 6


def test_an_unreadable_store_gets_one_line_with_the_way_out(tmp_path, capsys):
    db = tmp_path / "runs.db"
    db.write_bytes(os.urandom(8192))
    for args in (["sweep", "list"], ["runs", "list"]):
        assert main([*args, "--db", str(db)]) == 2
        err = capsys.readouterr().err
        assert "is not a readable run store" in err and f"mv {db} {db}.broken" in err and err.count("\n") == 1


def test_the_pool_uses_its_share_of_the_cores():
    pool = LocalPool(2)
    assert pool.slots == 2 and pool.threads == max(1, (os.cpu_count() or 1) // 2)
    assert "2 worker process(es)" in pool.describe()
    with pytest.raises(ValueError, match="workers"):
        LocalPool(0)


def test_a_sweep_started_from_a_thread_runs(tmp_path):
    """The app starts sweeps from a background thread; spawned workers do not need the main thread."""
    store, sweep, outcome = SweepStore(tmp_path / "runs.db"), grid(axes={}, seeds=[0]), []
    thread = threading.Thread(target=lambda: outcome.append(run_sweep(sweep, store, LocalPool(1))))
    thread.start()
    thread.join(300)
    assert outcome and outcome[0].ran == 2
