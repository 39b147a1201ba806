"""Server-wide job manager: long work (training, comparisons, any callable) in background threads.

A Streamlit page reruns from the top on every click, so it cannot own a training loop. It submits a
job here instead (one JobManager per server, e.g. from st.cache_resource), then renders the job's
progress events from a fragment on a timer; Cancel sets the job's stop flag, which the training
callback answers with "stop". The manager enforces a per-server limit on running jobs
(CONVCOV_MAX_JOBS, default 1) and a cap on the images one job may train on
(CONVCOV_MAX_JOB_SAMPLES = epochs x training images x seeds x variants, default 200,000), on the
arithmetic it needs (CONVCOV_MAX_JOB_TFLOP, work.run_flops over its runs, default 50: the image cap
alone let a 512-wide network with 51 x 51 filters start), and on the memory one run needs
(ensemble.plan.member_bytes: 16 P + 1.5 s B A, at most MEMORY_SHARE of the memory available when
the job is submitted), and saves finished runs and comparisons to the
run store (a cancelled comparison is saved with the runs it finished; a cancelled single run is
not saved). A comparison job is recorded in the store and stores each run as it finishes
(comparison_jobs), so a server killed mid-job loses only the runs then training: after a restart
`interrupted()` lists the job and `resume` trains the runs it lacks. A job may name its `owner`
(an opaque string, e.g. a visitor's token): list_jobs reports it, so a page reloaded while its job
runs finds that job again.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from . import settings
from .compare import ComparisonPlan, ComparisonResult
from .comparison_jobs import ComparisonJobs, InterruptedJob, comparison_label
from .ensemble.plan import MEMORY_SHARE, available_bytes, config_member_bytes
from .runs import RunStore
from .train import ProgressEvent, RunResult, TrainConfig, resolve_device, train
from .work import images_per_run, meta_model, run_flops

KEEP_FINISHED = 50  # finished jobs remembered for list_jobs / status


class Busy(RuntimeError):
    """The server already runs as many jobs as it allows; the message says what to do."""


class Interrupted(RuntimeError):
    """A job's work stopped before its end for a reason outside it (e.g. the process driving a sweep
    died); the job ends "interrupted" with this message, and what it had finished is kept."""


class JobTooLarge(ValueError):
    """A job would train on more images than this server allows per job, or one of its runs would need
    more memory than the machine has free."""


@dataclass
class JobStatus:
    """A snapshot of one job. state: "running", "done", "cancelled", "interrupted" or "failed"; progress in [0, 1];
    result_id: the saved run or comparison id (None until saved); owner: as given to submit."""

    id: int
    kind: str
    label: str
    state: str
    progress: float
    message: str
    created: float
    finished: float | None
    n_events: int
    last_event: ProgressEvent | None
    eta_s: float | None
    result_id: int | None
    owner: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass
class _Job:
    id: int
    kind: str
    label: str
    work: Callable | None
    owner: str | None = None
    created: float = field(default_factory=time.time)
    state: str = "running"
    message: str = ""
    finished: float | None = None
    events: list = field(default_factory=list)
    first_progress: tuple[float, float] | None = None  # (time, fraction done) at the first event
    shown_eta: tuple[float, float] | None = None  # (time, seconds left) last reported
    stop: threading.Event = field(default_factory=threading.Event)
    result: object = None
    result_id: int | None = None
    thread: threading.Thread | None = None


def memory_problem(config: TrainConfig) -> str | None:
    """Why one run of config would not fit in memory now, or None: its network's member_bytes
    (traced on the meta device, so nothing is allocated) against MEMORY_SHARE of available_bytes.
    A network that cannot take the config's images at all is left to the run, which says why."""
    available = available_bytes(resolve_device(config.device))
    if available is None:
        return None
    try:
        need = config_member_bytes(config, meta_model(config))
    except RuntimeError:
        return None
    if need <= MEMORY_SHARE * available:
        return None
    return (f"one run of this job would need about {need / 2**30:,.1f} GiB of memory while it trains "
            f"(weights, gradients, optimizer state and the activations of a batch of {config.batch_size}); "
            f"this machine has {available / 2**30:,.1f} GiB free. Use a smaller batch, a narrower or "
            "shallower model, a smaller kernel or larger patches.")


def _tflop(config: TrainConfig, runs: int) -> float:
    """work.run_flops of `runs` runs in TFLOP; 0 for a network that does not take its images (its run
    says why, as memory_problem leaves it to the run)."""
    try:
        return run_flops(config) * runs / 1e12
    except ValueError:
        return 0.0


class JobManager:
    """Runs train/compare jobs (or any callable taking a progress callback) in background threads."""

    def __init__(self, max_jobs: int | None = None, store: RunStore | None = None,
                 max_samples: int | None = None, store_path: str | None = None, max_tflop: int | None = None):
        self.max_jobs = max_jobs if max_jobs is not None else settings.max_jobs()
        self.max_samples = max_samples if max_samples is not None else settings.max_job_samples()
        self.max_tflop = max_tflop if max_tflop is not None else settings.max_job_tflop()
        if self.max_jobs < 1 or self.max_samples < 1:
            raise ValueError("max_jobs and max_samples must be >= 1")
        self._store, self._store_path = store, store_path
        self._comparisons: ComparisonJobs | None = None
        self._lock = threading.Lock()
        self._jobs: dict[int, _Job] = {}
        self._next_id = 1

    @property
    def store(self) -> RunStore:
        """The run store finished jobs are saved to: `store`, else RunStore(store_path), opened on
        first use (a store that cannot be opened fails then, not when the manager is made)."""
        if self._store is None:
            self._store = RunStore(self._store_path)
        return self._store

    @property
    def comparisons(self) -> ComparisonJobs:
        """The recorded comparison jobs of the store."""
        if self._comparisons is None:
            self._comparisons = ComparisonJobs(self.store)
        return self._comparisons

    # -- submitting ------------------------------------------------------------------------------

    def submit(self, kind: str, target, *, variants: dict | None = None, seeds=None,
               references: dict | None = None, name: str | None = None, samples: int | None = None,
               label: str | None = None, owner: str | None = None, ensemble: bool | None = None) -> int:
        """Start a job; return its id. Raises Busy when the server is full, JobTooLarge (a ValueError)
        when it would train on too many images, ValueError for a bad config.

        kind "train": target is a TrainConfig. kind "compare": target is the base TrainConfig, with
        variants, seeds and ensemble as for compare.compare. kind "task": target is fn(callback) -> result, with
        `samples` (images it will process, if known) checked against the cap. A train or compare
        job whose run would not fit in memory (memory_problem) is refused with JobTooLarge.
        """
        if kind == "train":
            config = target.validate()
            label = label or (f"train {config.model} on {config.dataset}, init {config.init}, "
                              f"seed {config.seed}")
            self._check_size(config, images_per_run(config), runs=1)
            return self._launch(kind, label, owner, name, lambda: functools.partial(train, config))
        if kind == "compare":
            config = target.validate()
            if not variants or seeds is None or not list(seeds):
                raise ValueError("a compare job needs variants and at least one seed")
            plan = ComparisonPlan(config, variants, references or {}, list(seeds), ensemble)
            label = label or comparison_label(plan)
            self._check_size(config, images_per_run(config) * plan.n_runs, runs=plan.n_runs)
            return self._launch(kind, label, owner, name, lambda: self.comparisons.start(plan, label, owner, name))
        if kind == "task":
            if not callable(target):
                raise ValueError("a task job needs a callable fn(callback) -> result")
            if samples is not None:
                self._check_size(None, samples)
            return self._launch(kind, label or getattr(target, "__name__", "task"), owner, name, lambda: target)
        raise ValueError(f"unknown job kind {kind!r}; use train, compare or task")

    def resume(self, job_id: int, owner: str | None = None) -> int:
        """Run the rest of an interrupted comparison job (one of interrupted(), by its record id): the
        runs its stored comparison lacks, stored into it. The new job's id. Busy and JobTooLarge as
        submit; ValueError when the job is not interrupted (resumed or set aside already)."""
        found = next((j for j in self.interrupted() if j.record.id == job_id), None)
        if found is None:
            raise ValueError(f"job {job_id} is not an interrupted job: it was resumed or set aside already")
        plan = found.record.plan
        self._check_size(plan.base, images_per_run(plan.base) * found.n_left, runs=found.n_left)
        return self._launch("compare", found.record.label, owner, found.record.name,
                            lambda: self.comparisons.resume(job_id)[1])

    def interrupted(self) -> list[InterruptedJob]:
        """Comparison jobs whose server died before they ended, with the runs they finished."""
        return self.comparisons.interrupted()

    def _check_size(self, config: TrainConfig | None, samples: int, runs: int = 0) -> None:
        """JobTooLarge when the job would train on more images than allowed, its `runs` runs of `config`
        (None: a task) with more arithmetic, or one run would not fit in memory."""
        if samples > self.max_samples:
            raise JobTooLarge(
                f"this job would train on {samples:,} images (epochs x training images x runs); this "
                f"server allows {self.max_samples:,} per job (CONVCOV_MAX_JOB_SAMPLES). Use fewer "
                "epochs, seeds or variants, a smaller dataset, or the command line "
                "(python -m convcov_core compare ...) on your own machine.")
        if config is not None and (tflop := _tflop(config, runs)) > self.max_tflop:
            raise JobTooLarge(
                f"this job would train with about {tflop:,.0f} TFLOP of arithmetic; this server allows "
                f"{self.max_tflop:,} per job (CONVCOV_MAX_JOB_TFLOP). Use a narrower or shallower model, a "
                "smaller kernel, larger patches, fewer epochs or runs, or the command line on your own machine.")
        if config is not None and (problem := memory_problem(config)):
            raise JobTooLarge(problem)

    def _launch(self, kind: str, label: str, owner: str | None, name: str | None, make_work) -> int:
        """Take a place among the running jobs (Busy when there is none), then start make_work()'s work
        (what it records or refuses, it does with the place held) in a thread; the job's id."""
        with self._lock:
            running = [j for j in self._jobs.values() if j.state == "running"]
            if len(running) >= self.max_jobs:
                names = "; ".join(j.label for j in running)
                raise Busy(
                    f"this server already runs {len(running)} job(s), its limit (CONVCOV_MAX_JOBS="
                    f"{self.max_jobs}): {names}. Wait for it to finish or cancel it, then start again.")
            job = _Job(self._next_id, kind, label, None, owner)
            self._next_id += 1
            self._jobs[job.id] = job
            self._forget_old_jobs()
        try:
            job.work = make_work()
        except BaseException:
            with self._lock:
                del self._jobs[job.id]
            raise
        job.thread = threading.Thread(target=self._run, args=(job, name), name=f"convcov-job-{job.id}",
                                      daemon=True)
        job.thread.start()
        return job.id

    def _forget_old_jobs(self) -> None:
        finished = sorted((j for j in self._jobs.values() if j.state != "running"), key=lambda j: j.id)
        for job in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]

    def _run(self, job: _Job, name: str | None) -> None:
        def callback(event):
            with self._lock:
                job.events.append(event)
                if job.first_progress is None:
                    job.first_progress = (time.time(), _progress(event))
            return "stop" if job.stop.is_set() else None

        result = None
        try:
            result = job.work(callback)
            state, message = "done", "finished"
            if isinstance(result, RunResult):
                state = "cancelled" if result.status == "cancelled" else "done"
                message = result.message
                if state == "done":
                    job.result_id = self.store.save(result, name=name)
            elif isinstance(result, ComparisonResult):  # stored run by run (comparison_jobs)
                state = "cancelled" if result.status == "cancelled" else "done"
                message = result.verdict or result.status
                job.result_id = result.id
            elif job.stop.is_set():
                state, message = "cancelled", "cancelled"
        except Interrupted as exc:
            state, message = "interrupted", str(exc)
        except Exception as exc:  # the job's owner reads the message from status(); nothing to re-raise to
            saving = " (the work finished; saving it to the run store failed)" if result is not None else ""
            state, message = "failed", f"{type(exc).__name__}: {exc}{saving}"
        with self._lock:
            job.result, job.state, job.message, job.finished = result, state, message, time.time()

    # -- observing -------------------------------------------------------------------------------

    def _job(self, job_id: int) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise ValueError(f"no job with id {job_id} (finished jobs are forgotten after {KEEP_FINISHED})")
        return job

    def status(self, job_id: int) -> JobStatus:
        """Snapshot of a job's state and progress."""
        with self._lock:
            job = self._job(job_id)
            last = job.events[-1] if job.events else None
            progress = 1.0 if job.state == "done" else _progress(last)
            return JobStatus(id=job.id, kind=job.kind, label=job.label, state=job.state, progress=progress,
                             message=job.message, created=job.created, finished=job.finished,
                             n_events=len(job.events), last_event=last,
                             eta_s=_shown_eta(job, progress) if job.state == "running" else None,
                             result_id=job.result_id, owner=job.owner)

    def events(self, job_id: int, since: int = 0) -> list[ProgressEvent]:
        """The job's progress events from index `since` on (pass the count you already have)."""
        with self._lock:
            return list(self._job(job_id).events[since:])

    def result(self, job_id: int):
        """The job's RunResult / ComparisonResult / task return value (None while running or failed)."""
        with self._lock:
            return self._job(job_id).result

    def cancel(self, job_id: int) -> bool:
        """Ask a running job to stop after its current step; False if it had already finished."""
        with self._lock:
            job = self._job(job_id)
            if job.state != "running":
                return False
            job.stop.set()
            return True

    def wait(self, job_id: int, timeout: float | None = None) -> JobStatus:
        """Block until the job finishes (or timeout seconds pass); return its status."""
        with self._lock:
            thread = self._job(job_id).thread
        thread.join(timeout)
        return self.status(job_id)

    def list_jobs(self) -> list[JobStatus]:
        """Every remembered job, newest first (running ones are the queue a second visitor sees)."""
        with self._lock:
            ids = sorted(self._jobs, reverse=True)
        return [self.status(i) for i in ids]


def _progress(event: ProgressEvent | None) -> float:
    """Fraction of the job done: ProgressEvent.fraction_done ((finished runs + steps / total steps) / runs)."""
    if event is None or not event.total_steps:
        return 0.0
    return event.fraction_done()


ETA_SMOOTHING_S = 30.0


def smoothed_eta(previous: tuple[float, float] | None, estimate: float | None, now: float,
                 tau: float = ETA_SMOOTHING_S) -> float | None:
    """Seconds left as shown: the last shown value counted down since (t, e) = previous, moved toward
    the new estimate by the share 1 - exp(-(now - t) / tau). The pace of a comparison changes from
    run to run (frozen and trained filters, evaluations), so the bare estimate swung 37 -> 23 -> 35
    min within 30 s; this one follows a lasting change within about tau seconds."""
    if previous is None or estimate is None:
        return estimate
    t, shown = previous
    counted_down = max(shown - (now - t), 0.0)
    return counted_down + (1 - math.exp(-max(now - t, 0.0) / tau)) * (estimate - counted_down)


def _shown_eta(job: _Job, progress: float, now: float | None = None) -> float | None:
    """smoothed_eta of _eta, remembered on the job."""
    now = time.time() if now is None else now
    eta = smoothed_eta(job.shown_eta, _eta(job, progress, now), now)
    job.shown_eta = None if eta is None else (now, eta)
    return eta


def _eta(job: _Job, progress: float, now: float | None = None) -> float | None:
    """Seconds left at the pace since the job's first progress event, which leaves out loading the
    data and the first step's warm-up (on the CPU they made a one-minute job say "21 min left" at
    its third step); from the job's start while there is no pace yet."""
    now = time.time() if now is None else now
    if job.first_progress is not None:
        t0, p0 = job.first_progress
        if progress > p0 and now > t0:
            return (now - t0) / (progress - p0) * (1 - progress)
    if progress <= 0:
        return None
    return (now - job.created) * (1 - progress) / progress
