"""Job manager: background runs, buffered events, the per-server limit, the size cap, cancel."""

import threading
import time

import pytest

from convcov_core import jobs
from convcov_core.jobs import Busy, JobManager, JobTooLarge
from convcov_core.runs import RunStore
from convcov_core.train import TrainConfig

TINY = TrainConfig(model="convmixer-16/2", kernel_size=5, patch_size=4, epochs=1, batch_size=32,
                   max_steps=5, device="cpu")


@pytest.fixture
def manager(tmp_path):
    return JobManager(max_jobs=1, store=RunStore(tmp_path / "runs.db"), max_samples=100_000)


def _blocking_task(release: threading.Event):
    def task(callback):
        release.wait(30)
        return "finished"
    return task


def test_train_job_runs_in_the_background_keeps_events_and_saves(manager):
    job = manager.submit("train", TINY, name="bg")
    status = manager.wait(job, 120)
    assert status.state == "done" and status.progress == 1.0, status.message
    events = manager.events(job)
    assert [e.kind for e in events].count("step") == 5 and events[-1].kind == "done"
    assert manager.events(job, since=3) == events[3:]
    run = manager.store.get(status.result_id)
    assert run.status == "ok" and run.final == manager.result(job).final
    assert manager.store.list()[0].name == "bg"


def test_the_job_limit_refuses_a_second_job_with_a_clear_message(manager):
    release = threading.Event()
    first = manager.submit("task", _blocking_task(release), label="slow thing")
    with pytest.raises(Busy, match=r"already runs 1 job.*CONVCOV_MAX_JOBS=1.*slow thing"):
        manager.submit("train", TINY)
    assert [j.state for j in manager.list_jobs()] == ["running"]
    release.set()
    assert manager.wait(first, 30).state == "done" and manager.result(first) == "finished"
    second = manager.submit("task", _blocking_task(release))
    assert manager.wait(second, 30).state == "done"


def test_two_jobs_at_once_when_the_limit_allows(tmp_path):
    manager = JobManager(max_jobs=2, store=RunStore(tmp_path / "runs.db"))
    release = threading.Event()
    jobs = [manager.submit("task", _blocking_task(release)) for _ in range(2)]
    with pytest.raises(Busy):
        manager.submit("task", _blocking_task(release))
    release.set()
    assert all(manager.wait(j, 30).state == "done" for j in jobs)


def test_cancel_stops_a_training_job_early_and_saves_nothing(manager):
    job = manager.submit("train", TINY.replace(max_steps=100_000 // 32, epochs=20))
    while not manager.events(job):
        time.sleep(0.05)
    assert manager.cancel(job) is True
    status = manager.wait(job, 120)
    assert status.state == "cancelled" and status.result_id is None
    steps = [e for e in manager.events(job) if e.kind == "step"]
    assert 0 < len(steps) < 100_000 // 32
    assert manager.result(job).status == "cancelled"
    assert manager.store.list() == []
    assert manager.cancel(job) is False


def test_a_cancelled_comparison_is_saved_with_the_runs_it_finished(manager):
    job = manager.submit("compare", TINY.replace(max_steps=40), variants={"a": {}, "b": {}}, seeds=[0, 1],
                         ensemble=False)  # trained together, the four runs end at once
    while not any(e.kind == "done" for e in manager.events(job)):
        time.sleep(0.05)
    manager.cancel(job)
    status = manager.wait(job, 120)
    assert status.state == "cancelled"
    saved = manager.store.get_comparison(status.result_id)
    assert saved.status == "cancelled"
    assert [len(saved.runs[v]) for v in ("a", "b")] == [1, 0]


def test_a_job_over_the_sample_cap_is_refused_before_it_starts(manager):
    manager.max_samples = 1_000
    with pytest.raises(JobTooLarge, match=r"4,000 images.*allows 1,000.*CONVCOV_MAX_JOB_SAMPLES"):
        manager.submit("train", TINY.replace(max_steps=None))  # 125 steps x 32: all of mnist5k's 4,000
    with pytest.raises(JobTooLarge, match="allows 1,000"):
        manager.submit("compare", TINY.replace(max_steps=8), variants={"a": {}, "b": {}}, seeds=[0, 1])
    assert manager.list_jobs() == []


def test_a_run_that_would_not_fit_in_memory_is_refused_before_it_starts(manager):
    huge = TINY.replace(model="convmixer-512/16", kernel_size=31, patch_size=1, batch_size=512, max_steps=1)
    with pytest.raises(JobTooLarge, match=r"one run of this job would need about [\d,.]+ GiB.*GiB free"):
        manager.submit("compare", huge, variants={"a": {}}, seeds=[0])
    assert manager.list_jobs() == []


def test_the_memory_check_compares_the_estimate_with_the_memory_available(manager, monkeypatch):
    monkeypatch.setattr(jobs, "available_bytes", lambda device: 10 * 2**30)
    assert jobs.memory_problem(TINY) is None
    monkeypatch.setattr(jobs, "available_bytes", lambda device: 2**20)
    assert "this machine has 0.0 GiB free" in jobs.memory_problem(TINY)
    too_small = TINY.replace(model="timm:convnext_atto", kernel_size=None, patch_size=None)
    assert jobs.memory_problem(too_small) is None  # 28 x 28 images: its run says why it cannot train


def test_a_job_keeps_its_owner_for_whoever_lists_the_jobs(manager):
    release = threading.Event()
    job = manager.submit("task", _blocking_task(release), owner="visitor-a/lab")
    assert [(j.id, j.owner, j.state) for j in manager.list_jobs()] == [(job, "visitor-a/lab", "running")]
    release.set()
    assert manager.wait(job, 30).owner == "visitor-a/lab"


def test_compare_job_saves_the_comparison(manager):
    job = manager.submit("compare", TINY.replace(max_steps=3),
                         variants={"default": {}, "gaussian": {"init": "gaussian"}}, seeds=[0])
    status = manager.wait(job, 120)
    assert status.state == "done", status.message
    saved = manager.store.get_comparison(status.result_id)
    assert list(saved.runs) == ["default", "gaussian"] and len(saved.runs["gaussian"]) == 1
    assert {e.variant for e in manager.events(job)} == {"default", "gaussian"}


def test_a_failing_job_reports_its_error(manager):
    def broken(callback):
        raise RuntimeError("disk on fire")

    job = manager.submit("task", broken)
    status = manager.wait(job, 30)
    assert status.state == "failed" and "disk on fire" in status.message
    with pytest.raises(ValueError, match="no job with id 999"):
        manager.status(999)
    with pytest.raises(ValueError, match="unknown job kind"):
        manager.submit("dance", TINY)


def test_limits_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVCOV_MAX_JOBS", "3")
    monkeypatch.setenv("CONVCOV_MAX_JOB_SAMPLES", "50,000")
    manager = JobManager(store=RunStore(tmp_path / "runs.db"))
    assert (manager.max_jobs, manager.max_samples) == (3, 50_000)
    monkeypatch.setenv("CONVCOV_MAX_JOBS", "lots")
    with pytest.raises(ValueError, match="CONVCOV_MAX_JOBS must be a whole number"):
        JobManager()
    monkeypatch.delenv("CONVCOV_MAX_JOBS")
    monkeypatch.delenv("CONVCOV_MAX_JOB_SAMPLES")
    assert (JobManager().max_jobs, JobManager().max_samples) == (1, 200_000)


def test_time_left_follows_the_pace_since_the_first_step_not_the_setup():
    from convcov_core.jobs import _eta, _Job

    job = _Job(id=1, kind="task", label="", work=None, created=0.0)
    assert _eta(job, 0.0, now=5.0) is None  # nothing to go on yet
    assert _eta(job, 0.1, now=10.0) == pytest.approx(90.0)  # no event recorded: from the start
    job.first_progress = (30.0, 0.01)  # 30 s of loading and warm-up before the first step's event
    assert _eta(job, 0.11, now=40.0) == pytest.approx(89.0)  # 10 s per 0.1: 89 s for the last 0.89
    assert _eta(job, 0.01, now=31.0) == pytest.approx(31.0 * 0.99 / 0.01)  # no pace yet


def test_a_running_job_records_where_its_first_event_found_it(manager):
    from convcov_core.train import ProgressEvent

    reported, release = threading.Event(), threading.Event()

    def work(callback):
        callback(ProgressEvent("step", 1, 4, 1))
        reported.set()
        release.wait(10)
        return "done"

    before = time.time()
    job_id = manager.submit("task", work, label="pace")
    assert reported.wait(10)
    t0, p0 = manager._jobs[job_id].first_progress
    assert p0 == 0.25 and before <= t0 <= time.time()
    release.set()
    assert manager.wait(job_id, 10).state == "done"


def test_the_time_left_shown_does_not_swing_with_each_estimate():
    from convcov_core.jobs import smoothed_eta

    estimates = [37, 23, 35, 27, 21]  # minutes, what the bare estimate said within 30 s
    shown, previous = [], None
    for i, minutes in enumerate(estimates):
        now = 7.5 * i
        eta = smoothed_eta(previous, minutes * 60.0, now)
        shown.append(eta / 60)
        previous = (now, eta)
    assert shown[0] == 37
    assert max(shown) - min(shown) < 8  # the estimates spanned 16 minutes
    assert all(later <= earlier + 1 for earlier, later in zip(shown, shown[1:]))  # never back up by over a minute


def test_the_time_left_shown_follows_a_lasting_change_and_counts_down():
    from convcov_core.jobs import ETA_SMOOTHING_S, smoothed_eta

    assert smoothed_eta((0.0, 600.0), 600.0 - 10.0, now=10.0) == pytest.approx(590.0)  # on pace: counts down
    later = smoothed_eta((0.0, 600.0), 300.0, now=5 * ETA_SMOOTHING_S)
    assert later == pytest.approx(300.0, abs=5)  # a lasting change is taken within a few tau
    assert smoothed_eta(None, 42.0, now=1.0) == 42.0 and smoothed_eta((0.0, 5.0), None, now=1.0) is None
