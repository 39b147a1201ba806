"""Run store: round trips, two writer processes at once, a writer killed mid-save, a read-only store,
export."""

import csv
import json
import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from convcov_core.compare import ComparisonResult, summarize
from convcov_core.runs import RunStore, decode_covariance, encode_covariance
from convcov_core.sqlite_file import StoreReadOnly
from convcov_core.sweep import SweepStore
from convcov_core.train import TrainConfig, train
from helpers.read_only import read_only
from helpers.runs import fake_run

REPO = Path(__file__).resolve().parents[1]


def test_covariance_bytes_round_trip_keeps_float32_precision():
    S = fake_run().covariances[0]
    blob = encode_covariance(S)
    assert len(blob) == 4 * 25 * 26 // 2  # upper triangle only
    back = decode_covariance(blob, 5)
    assert back.dtype == torch.float64 and torch.equal(back, back.T)
    assert torch.allclose(back, S, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="expected"):
        decode_covariance(blob, 4)


def test_save_get_list_delete_round_trip(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run = fake_run(seed=3, acc=91.5)
    run_id = store.save(run, name="first")
    assert run.id == run_id
    got = store.get(run_id)
    assert got.id == run_id and got.status == "ok" and got.final == run.final
    assert got.config.to_dict() == dict(run.config.to_dict(), precision=run.precision)  # stored resolved
    assert got.history["loss"][:2] == [2.3, 2.0] and got.history["loss"][2] != got.history["loss"][2]
    assert got.layer_names == run.layer_names
    for a, b in zip(got.covariances, run.covariances):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    assert torch.equal(got.state_dict["head.weight"], run.state_dict["head.weight"])
    [summary] = store.list()
    assert (summary.id, summary.name, summary.init, summary.seed, summary.test_acc) == (run_id, "first",
                                                                                       "gaussian", 3, 91.5)
    assert summary.kernel_size == 5 and summary.depth == 2 and summary.has_covariances and summary.has_weights
    store.delete(run_id)
    assert store.list() == []
    with pytest.raises(ValueError, match=f"no run with id {run_id}"):
        store.get(run_id)
    with pytest.raises(ValueError, match="no run"):
        store.delete(run_id)


def test_learned_init_covariances_come_back_with_the_config(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run = fake_run(init="learned")
    run.config.covariances = [torch.eye(25, dtype=torch.float64)] * 3
    run.state_dict = None
    got = store.get(store.save(run))
    assert len(got.config.covariances) == 3 and torch.equal(got.config.covariances[0], torch.eye(25).double())
    assert len(got.covariances) == 2 and got.state_dict is None


def test_a_real_training_run_round_trips(tmp_path):
    config = TrainConfig(model="convmixer-16/2", kernel_size=5, patch_size=4, epochs=1, batch_size=32,
                         max_steps=3, device="cpu", keep_state_dict=True)
    run = train(config)
    store = RunStore(tmp_path / "runs.db")
    got = store.get(store.save(run))
    assert got.history == run.history and got.final == run.final
    assert set(got.state_dict) == set(run.state_dict)
    assert all(torch.equal(got.state_dict[k], v) for k, v in run.state_dict.items())


def test_comparison_round_trip(tmp_path):
    variants = {"default": {"init": "default"}, "gaussian": {"init": "gaussian"}}
    runs = {"default": [fake_run(s, acc=90.0 + s, init="default", variant="default") for s in (0, 1)],
            "gaussian": [fake_run(s, acc=91.0 + 2 * s, variant="gaussian") for s in (0, 1)]}
    refs = {"default": None, "gaussian": "default"}
    rows, verdicts = summarize(variants, [0, 1], runs, refs)
    cmp = ComparisonResult(base_config=TrainConfig(), variants=variants, seeds=[0, 1], runs=runs, rows=rows,
                           verdicts=verdicts, wall_time=10.0, references=refs)
    store = RunStore(tmp_path / "runs.db")
    cmp_id = store.save_comparison(cmp, name="demo")
    assert all(r.id is not None for rs in runs.values() for r in rs)
    [summary] = store.list_comparisons()
    assert (summary.id, summary.name, summary.variants, summary.seeds, summary.n_runs) == (
        cmp_id, "demo", ["default", "gaussian"], [0, 1], 4)
    got = store.get_comparison(cmp_id)
    assert got.rows == rows and got.verdicts == verdicts and got.references == refs
    assert [r.final["test_acc"] for r in got.runs["gaussian"]] == [91.0, 93.0]
    assert {r.comparison_id for r in store.list()} == {cmp_id}
    store.delete_comparison(cmp_id)
    assert store.list() == [] and store.list_comparisons() == []


def test_a_store_written_before_settled_batchnorm_is_read_and_judged_by_todays_rule(tmp_path):
    """Stores of earlier versions: comparisons without a metric column, runs whose only test
    accuracy was the raw eval-mode one, verdicts written by the old rule."""
    variants = {"default": {"init": "default"}, "gaussian": {"init": "gaussian"}}
    runs = {"default": [fake_run(s, acc=[12.5, 18.3, 10.0][s], init="default", variant="default") for s in (0, 1, 2)],
            "gaussian": [fake_run(s, acc=[47.7, 47.0, 52.7][s], variant="gaussian") for s in (0, 1, 2)]}
    for run in runs["default"] + runs["gaussian"]:
        del run.final["test_acc_raw"]
    refs = {"default": None, "gaussian": "default"}
    rows, _ = summarize(variants, [0, 1, 2], runs, refs)
    cmp = ComparisonResult(base_config=TrainConfig(), variants=variants, seeds=[0, 1, 2], runs=runs, rows=rows,
                           verdicts=["gaussian beat default by 42.2 ± 18.0 points over 3 seeds"], wall_time=1.0,
                           references=refs)
    path = tmp_path / "runs.db"
    cmp_id = RunStore(path).save_comparison(cmp)
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE comparisons DROP COLUMN metric")
    got = RunStore(path).get_comparison(cmp_id)
    assert got.metric == "test_acc"
    assert got.runs["default"][0].final["test_acc_raw"] == 12.5  # what it was: the raw eval-mode number
    assert got.rows[1]["winner"] == "gaussian" and got.verdicts[0].startswith("gaussian beat default by 35.5 points")
    assert "95% interval" in got.verdicts[0]


def test_a_comparison_with_a_learned_variant_saves_and_exports(tmp_path):
    """The Lab hands the learned covariances to the learned variant's overrides: the store keeps
    them with each run, the comparison records their count."""
    learned = [torch.eye(25, dtype=torch.float64)] * 2
    variants = {"default": {"init": "default"}, "learned": {"init": "learned", "covariances": learned}}
    runs = {"default": [fake_run(0, init="default", variant="default")],
            "learned": [fake_run(0, acc=92.0, init="learned", variant="learned")]}
    runs["learned"][0].config.covariances = learned
    refs = {"default": None, "learned": "default"}
    rows, verdicts = summarize(variants, [0], runs, refs)
    cmp = ComparisonResult(base_config=TrainConfig(), variants=variants, seeds=[0], runs=runs, rows=rows,
                           verdicts=verdicts, wall_time=3.0, references=refs)
    json.dumps(cmp.to_dict(), allow_nan=True)  # the Lab's history export
    store = RunStore(tmp_path / "runs.db")
    got = store.get_comparison(store.save_comparison(cmp))
    assert got.variants["learned"] == {"init": "learned", "n_covariances": 2}
    assert torch.equal(got.runs["learned"][0].config.covariances[1], learned[1])
    assert variants["learned"]["covariances"] is learned  # the caller's overrides are untouched


def test_export_writes_strict_json_and_a_history_csv(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run_id = store.save(fake_run())
    json_path, csv_path = store.export(run_id, tmp_path / "out" / "run.json")
    doc = json.loads(json_path.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard {c}"))
    assert doc["id"] == run_id and doc["final"]["test_acc"] == 90.0
    assert doc["history"]["loss"][2] is None  # NaN becomes null
    assert len(doc["covariances"]["blocks.0.0.fn.0"]) == 25
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[1]["test_acc"] == "60.0" and rows[0]["test_acc"] == "" and rows[3]["test_acc"] == "90.0"


def _write_runs(path: str, seed: int, n: int) -> None:
    store = RunStore(path)
    for i in range(n):
        store.save(fake_run(seed=seed * 1000 + i, acc=float(i)), name=f"writer{seed}")


def test_two_writer_processes_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "runs.db")
    n = 15
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_runs, args=(path, w, n)) for w in (1, 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    store = RunStore(path)
    runs = store.list()
    assert len(runs) == 2 * n
    assert sorted(r.seed for r in runs) == sorted([1000 + i for i in range(n)] + [2000 + i for i in range(n)])
    assert all(len(store.get(r.id).covariances) == 2 for r in runs)


_KILLED_WRITER = textwrap.dedent("""
    import sys, torch
    sys.path[:0] = [{repo!r}, {repo!r} + "/tests"]
    from convcov_core.runs import RunStore
    from helpers.runs import fake_run
    store = RunStore({path!r})
    i = 0
    while True:
        run = fake_run(seed=i, k=15)
        run.state_dict = {{"big": torch.randn(2_000_000)}}
        print(store.save(run), flush=True)
        i += 1
""")


def test_a_writer_killed_mid_save_leaves_every_finished_run_intact(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path).save(fake_run(seed=99))
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER.format(repo=str(REPO), path=str(path))],
                             stdout=subprocess.PIPE, text=True, cwd=REPO)
    finished = [int(child.stdout.readline()) for _ in range(3)]
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    assert child.returncode == -signal.SIGKILL
    store = RunStore(path)
    runs = store.list()
    ids = {r.id for r in runs}
    assert set(finished) <= ids and len(ids) >= 4
    for r in runs:
        got = store.get(r.id)
        assert len(got.covariances) == 2
        assert got.state_dict is not None
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        orphans = conn.execute("SELECT COUNT(*) FROM covariances WHERE run_id NOT IN (SELECT id FROM runs)")
        assert orphans.fetchone() == (0,)
    assert store.save(fake_run(seed=7)) > max(finished)  # still writable


@pytest.mark.parametrize("precision,device,stored", [
    ("bf16", "cpu", "bf16"), ("fp32", "cuda:0", "fp32"),
])
def test_precision_is_stored_resolved(tmp_path, precision, device, stored):
    store = RunStore(tmp_path / "runs.db")
    run = fake_run()
    run.precision, run.device = precision, device
    run_id = store.save(run)
    back = store.get(run_id)
    assert back.precision == stored and back.config.precision == stored


@pytest.mark.parametrize("device,precision", [("cpu", "fp32"), ("cuda:0", "bf16"), ("mps", "fp32")])
def test_runs_saved_before_precisions_existed_read_as_what_they_trained_in(tmp_path, device, precision):
    store = RunStore(tmp_path / "runs.db")
    run = fake_run()
    run.device = device
    run_id = store.save(run)
    with sqlite3.connect(tmp_path / "runs.db") as conn:  # an older convcov wrote no precision key
        config = json.loads(conn.execute("SELECT config FROM runs WHERE id = ?", (run_id,)).fetchone()[0])
        del config["precision"]
        conn.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(config), run_id))
    assert store.get(run_id).precision == precision


@pytest.mark.parametrize("what", ["file", "file and folder"])
def test_a_read_only_store_is_read_and_refuses_a_write_before_the_work(tmp_path, what):
    """`chattr +i runs.db` (its folder writable: SQLite's -shm file can be made beside it), or the
    folder too, as on a read-only mount (no -shm: read as an immutable file). Reads work, sweeps
    included (a store that never had one lacks their table); check_writable and every write raise
    StoreReadOnly with a way out; nothing of the write check is left in the store."""
    db = tmp_path / "runs.db"
    RunStore(db).save(fake_run(seed=1), name="kept")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]  # no -wal or -shm once closed
    with read_only(db, *([tmp_path] if what == "file and folder" else [])):
        store = RunStore(db)
        assert [r.name for r in store.list()] == ["kept"] and store.get(1).config.seed == 1
        assert store.list_comparisons() == [] and SweepStore(db).list() == []
        for write in (store.check_writable, SweepStore(db).check_writable, lambda: store.save(fake_run()),
                      lambda: store.delete(1)):
            with pytest.raises(StoreReadOnly, match=r"runs.db is read-only .*--db FILE.*CONVCOV_HOME"):
                write()
    writable = RunStore(db)
    writable.check_writable()
    assert [r.name for r in writable.list()] == ["kept"]
    with sqlite3.connect(db) as conn:
        assert "convcov_write_check" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}


def test_a_missing_store_in_a_read_only_folder_reads_as_empty(tmp_path):
    with read_only(tmp_path):
        store = RunStore(tmp_path / "runs.db")
        assert store.list() == [] and SweepStore(tmp_path / "runs.db").list() == []
        with pytest.raises(StoreReadOnly, match="its folder .* is read-only"):
            store.check_writable()
    assert not (tmp_path / "runs.db").exists()
