"""The local executor: a pool of worker processes on this machine, one batch of trials at a time per
worker (worker.trial_batches: a grid cell's compatible trials trained together as one ensemble, in
batches that keep every worker busy; one trial per batch without the ensemble).

On CPU each worker trains with cores / workers torch threads (so two single-thread workers on two
cores instead of one run fighting itself for both); on CUDA each worker takes one GPU in turn
(workers = GPUs by default; more per GPU when trials are small). Workers are spawned, not forked,
so they start with a clean torch. A worker that dies (killed, out of memory) breaks the pool: the
trials it was running are retried in a new pool, up to MAX_ATTEMPTS times, then recorded as failed;
the trials that had not started are simply run again. A driver that dies without shutting its pool
down (kill -9 of its pid alone, the OOM killer) takes its workers with it: each watches the driver
(exit_with_parent) and ends itself within a second, which also lets the driver's resource tracker
exit; the trials they were running are simply not stored, and `sweep resume` runs them.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, CancelledError, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import torch

from ..validation import whole_number
from .worker import TrialProgress, batching, failed_result, run_batch, trial_batches

MAX_ATTEMPTS = 3  # times a trial is started before a dying worker counts as the trial's failure
_POLL_S = 0.5
_PARENT_POLL_S = 1.0  # at most this long between a parent's death and its children's end
PARENT_GONE_EXIT = 75  # the exit status of a process that ended because its parent had died

_worker = {}  # a pool worker's progress queue, stop flag and torch threads (set by _start_worker)


def _start_worker(progress, stop, counter, threads: int, gpus: int) -> None:
    exit_with_parent()
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    torch.set_num_threads(threads)
    if gpus:
        torch.cuda.set_device(index % gpus)
    _worker.update(progress=progress, stop=stop, threads=threads)


def exit_with_parent() -> None:
    """End this process as soon as the process that started it is gone (a pool worker's: the sweep's
    driver; a Ray driver's: the app's server, ray_job), from a daemon thread. A driver killed with
    SIGKILL never shuts its pool down; its workers would wait for work in a pipe read forever (each a
    whole torch, about 1 GB), and keep its resource tracker alive by holding their end of its pipe.
    The thread waits on multiprocessing's parent sentinel, a pipe whose other end only the parent
    holds (readable the moment the parent dies, however it dies, on every platform); where there is
    none it notices the change of parent pid. Not prctl's PR_SET_PDEATHSIG: Linux only, and it fires
    when the parent *thread* that spawned the process exits, while the app runs sweeps from threads."""
    parent, parent_pid = multiprocessing.parent_process(), os.getppid()

    def parent_alive() -> bool:
        return (parent is None or parent.is_alive()) and os.getppid() == parent_pid

    def watch() -> None:
        while parent_alive():
            if parent is not None:
                parent.join(_PARENT_POLL_S)  # returns at once when the parent dies
            else:
                time.sleep(_PARENT_POLL_S)
        os._exit(PARENT_GONE_EXIT)  # no cleanup to wait for: the work's result has nowhere to go

    threading.Thread(target=watch, name="convcov-parent-watch", daemon=True).start()


def _run_in_worker(configs: list, keys: list[str]):
    progress, stop = _worker["progress"], _worker["stop"]
    for key in keys:
        progress.put(("started", key))
    return run_batch([c.replace(threads=_worker["threads"]) for c in configs], keys, report=progress.put,
                     should_stop=stop.is_set)


class LocalPool:
    """Trials on `workers` processes of this machine (default: one per GPU, else one per CPU core),
    each with `threads` torch threads (default: cores // workers); ensemble: compatible trials in
    batches trained together (worker.trial_batches; None: where ensemble.pays_off), else one at a time."""

    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = None, ensemble: bool | None = None):
        self.ensemble = ensemble
        cores = os.cpu_count() or 1
        self.gpus = torch.cuda.device_count()
        self.workers = whole_number(workers, "workers", 1) if workers is not None else (self.gpus or cores)
        self.threads = whole_number(threads, "threads", 1) if threads is not None else max(1, cores // self.workers)

    @property
    def slots(self) -> int:
        """Trials that run at once."""
        return self.workers

    def describe(self) -> str:
        where = f"{self.gpus} GPU(s)" if self.gpus else f"{os.cpu_count()} CPU core(s)"
        return (f"local pool on this machine ({where}): {self.workers} worker process(es), "
                f"{self.threads} torch thread(s) each, {batching(self.ensemble)}")

    def run(self, trials, on_progress, should_stop):
        """Yield (trial, RunResult) as trials finish, in any order; on_progress(TrialProgress) while
        they run. should_stop() True: running trials are cancelled (their results come back with
        status "cancelled"), the others are not started."""
        context = multiprocessing.get_context("spawn")
        progress, stop, counter = context.Queue(), context.Event(), context.Value("i", 0)
        pending = {trial.key: trial for trial in trials}
        attempts = Counter()
        failed_starts = 0
        while pending and not stop.is_set():
            started: set[str] = set()
            with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                     initargs=(progress, stop, counter, self.threads, self.gpus)) as pool:
                futures = {pool.submit(_run_in_worker, [t.config for t in batch], [t.key for t in batch]): batch
                           for batch in trial_batches(list(pending.values()), self.slots, self.ensemble)}
                broken = False
                while futures:
                    done, _ = wait(futures, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                    _drain(progress, on_progress, started)
                    if not stop.is_set() and should_stop():
                        stop.set()
                        for future in futures:
                            future.cancel()
                    for future in done:
                        batch = futures.pop(future)
                        try:
                            results = future.result()
                        except CancelledError:
                            continue
                        except BrokenProcessPool:
                            broken = True
                            continue
                        for trial, result in zip(batch, results):
                            del pending[trial.key]
                            yield trial, result
                    if broken and not futures:
                        break
            _drain(progress, on_progress, started)
            failed_starts = failed_starts + 1 if broken and not started else 0
            if failed_starts >= MAX_ATTEMPTS:
                raise RuntimeError(f"the sweep's worker processes died before starting a trial, {MAX_ATTEMPTS} "
                                   "times in a row (a script that starts a sweep must guard it with "
                                   "if __name__ == '__main__')")
            for key in (started & set(pending)) if broken else ():
                attempts[key] += 1
                if attempts[key] >= MAX_ATTEMPTS:
                    trial = pending.pop(key)
                    yield trial, failed_result(trial.config, f"its worker process died {MAX_ATTEMPTS} times "
                                                             "(killed, or out of memory)")


def _drain(progress, on_progress, started: set) -> None:
    """Hand every queued progress report to on_progress; note the trials that started."""
    while True:
        try:
            item = progress.get_nowait()
        except queue_module.Empty:
            return
        if isinstance(item, TrialProgress):
            on_progress(item)
        else:
            started.add(item[1])
