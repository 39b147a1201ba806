"""Comparison jobs that outlive their server: each run stored as it finishes, the job recorded with
its plan, listed as interrupted once its process is gone, resumed with only the runs it lacks."""

import sqlite3

import pytest
import torch

from convcov_core import job_records
from convcov_core.compare import ComparisonPlan, compare
from convcov_core.jobs import Busy, JobManager
from convcov_core.runs import RunStore
from convcov_core.train import TrainConfig
from helpers.jobs import interrupt
from helpers.waits import wait_for

TINY = TrainConfig(model="convmixer-16/2", kernel_size=5, patch_size=4, epochs=1, batch_size=32,
                   max_steps=3, device="cpu")
LONG = {"max_steps": 100_000 // 32}  # a variant that trains until it is cancelled
WAIT_S = 120


@pytest.fixture
def manager(tmp_path):
    return JobManager(max_jobs=1, store=RunStore(tmp_path / "runs.db"), max_samples=10_000_000)


def test_each_run_is_stored_in_its_comparison_as_soon_as_it_finishes(manager):
    job = manager.submit("compare", TINY, variants={"a": {}, "b": LONG}, seeds=[0], ensemble=False)
    wait_for(lambda: manager.store.list(), "the first run stored")
    assert manager.status(job).running
    [summary] = manager.store.list_comparisons()
    assert summary.status == "running" and summary.n_runs == 1
    assert [(r.variant, r.seed) for r in manager.store.list()] == [("a", 0)]
    manager.cancel(job)
    status = manager.wait(job, WAIT_S)
    assert status.state == "cancelled" and status.result_id == summary.id
    saved = manager.store.get_comparison(summary.id)
    assert saved.status == "cancelled" and [len(saved.runs[v]) for v in "ab"] == [1, 0]
    assert saved.rows[0]["n"] == 1  # the table is written at the end
    assert manager.interrupted() == []


def test_a_comparison_cancelled_before_any_run_finished_leaves_nothing(manager):
    job = manager.submit("compare", TINY, variants={"a": LONG}, seeds=[0])
    wait_for(lambda: manager.events(job), "a first step")
    manager.cancel(job)
    assert manager.wait(job, WAIT_S).result_id is None
    assert manager.store.list_comparisons() == [] and manager.interrupted() == []


def test_an_interrupted_job_is_listed_and_resumed_with_only_the_runs_it_lacks(manager):
    plan = ComparisonPlan(TINY, {"a": {}, "b": {"init": "gaussian"}}, {}, [0, 1], ensemble=False)
    record_id = interrupt(manager.store, plan, [("a", 0), ("b", 0)])
    [found] = manager.interrupted()
    assert found.record.id == record_id and found.record.owner == "visitor/lab" and found.n_left == 2
    assert [(r.variant, r.seed) for r in found.finished] == [("a", 0), ("b", 0)]
    kept = {r.id for r in found.finished}
    assert manager.store.list_comparisons()[0].status == "interrupted"

    job = manager.resume(record_id, owner="someone/lab")
    status = manager.wait(job, WAIT_S)
    assert status.state == "done", status.message
    assert {(e.variant, e.seed) for e in manager.events(job)} == {("a", 1), ("b", 1)}
    saved = manager.store.get_comparison(status.result_id)
    assert saved.status == "ok" and {r.id for runs in saved.runs.values() for r in runs} >= kept
    assert sorted((v, r.config.seed) for v, runs in saved.runs.items() for r in runs) == [
        ("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert len(manager.store.list()) == 4 and saved.rows[1]["n"] == 2
    assert manager.interrupted() == []
    with pytest.raises(ValueError, match="not an interrupted job"):
        manager.resume(record_id)


def test_a_busy_server_refuses_a_resume_and_the_job_stays_interrupted(manager):
    plan = ComparisonPlan(TINY, {"a": {}}, {}, [0, 1])
    record_id = interrupt(manager.store, plan, [("a", 0)])
    other = manager.submit("compare", TINY, variants={"b": LONG}, seeds=[0])
    with pytest.raises(Busy):
        manager.resume(record_id)
    manager.cancel(other)
    manager.wait(other, WAIT_S)
    assert [j.record.id for j in manager.interrupted()] == [record_id]


def test_setting_an_interrupted_job_aside_keeps_its_runs_as_a_cancelled_comparison(manager):
    plan = ComparisonPlan(TINY, {"a": {}}, {}, [0, 1])
    record_id = interrupt(manager.store, plan, [("a", 0)])
    manager.comparisons.set_aside(record_id)
    assert manager.interrupted() == []
    [summary] = manager.store.list_comparisons()
    assert summary.status == "cancelled" and summary.n_runs == 1


def test_a_job_records_its_plan_with_the_learned_covariances_exactly(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    covariances = [torch.eye(25, dtype=torch.float64) * (1 + 1e-12 * i) for i in range(2)]
    plan = ComparisonPlan(TINY, {"default": {"init": "default"},
                                 "learned": {"init": "learned", "covariances": covariances}},
                          {"default": None, "learned": "default"}, [3, 4], ensemble=True)
    records = job_records.JobRecords(store.path)
    job_id = records.add(plan, comparison_id=7, label="l")
    records.end(job_id, "done")
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE jobs SET state = 'running', process = 'elsewhere 1 1'")
    [record] = records.interrupted()
    back = record.plan
    assert (back.base, back.references, back.seeds, back.ensemble) == (TINY, plan.references, [3, 4], True)
    assert back.variants["default"] == {"init": "default"}
    assert all(torch.equal(a, b) for a, b in zip(back.variants["learned"]["covariances"], covariances))
    assert record.comparison_id == 7 and record.state == "interrupted"


def test_a_process_is_alive_only_with_its_pid_and_its_start_time():
    me = job_records.this_process()
    assert job_records._alive(me)
    host, pid, started = me.split(" ")
    assert not job_records._alive(f"{host} {pid} {int(started) + 1}")  # the pid, used again later
    assert not job_records._alive(f"other-{host} {pid} {started}")
    assert not job_records._alive(f"{host} 999999999 {started}")


@pytest.mark.parametrize("together", [False, True])
def test_compare_trains_only_the_runs_it_lacks_and_reports_each_as_it_ends(together):
    variants = {"a": {}, "b": {"init": "gaussian"}}
    first = compare(TINY, variants, [0], ensemble=False)
    reported = []
    result = compare(TINY, variants, [0, 1], finished=[first.runs["a"][0], first.runs["b"][0]],
                     on_result=reported.append, ensemble=together)
    assert [(r.variant, r.config.seed) for r in reported] == [("a", 1), ("b", 1)]
    assert result.runs["a"][0] is first.runs["a"][0] and [r.config.seed for r in result.runs["b"]] == [0, 1]
    assert result.status == "ok" and result.rows[1]["n"] == 2
    assert result.wall_time >= first.runs["a"][0].wall_time + first.runs["b"][0].wall_time
    with pytest.raises(ValueError, match="not one this comparison still needs"):
        compare(TINY, variants, [0], finished=[first.runs["a"][0]] * 2)


def test_a_store_written_before_jobs_were_recorded_opens_and_records_them(tmp_path):
    """A store of the version before the `jobs` table: its runs and comparisons read as before, the
    first comparison job adds the table, and a finished job is not listed as interrupted."""
    path = tmp_path / "runs.db"
    old = compare(TINY, {"a": {}}, [0])
    old_id = RunStore(path).save_comparison(old)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE IF EXISTS jobs")
    store = RunStore(path)
    assert store.get_comparison(old_id).rows == old.rows and len(store.list()) == 1
    manager = JobManager(max_jobs=1, store=store, max_samples=10_000_000)
    assert manager.wait(manager.submit("compare", TINY, variants={"b": {"init": "gaussian"}}, seeds=[0],
                                       ensemble=False), WAIT_S).state == "done"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT state FROM jobs").fetchall() == [("done",)]
    assert job_records.JobRecords(path).interrupted() == [] and len(store.list()) == 2
