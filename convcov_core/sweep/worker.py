"""What runs one trial wherever an executor puts it (a pool process, a Ray worker): train() with a
progress reporter and a stop flag, every failure of the trial's own turned into a stored result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..train import ProgressEvent, RunResult, TrainConfig, new_history, train

REPORT_EVERY_S = 1.0  # seconds between a trial's "running" reports (the first step is always reported)


@dataclass(frozen=True)
class TrialProgress:
    """A running trial's last reported step: key, step of total_steps, loss."""

    key: str
    step: int
    total_steps: int
    loss: float | None


def run_trial(config: TrainConfig, key: str, report: Callable[[TrialProgress], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Train `config`; report(TrialProgress) about once a second; should_stop() True cancels (status
    "cancelled"). A trial that fails for a reason of its own (a bad config, an exception in
    training, running out of memory) comes back with status "failed" and the error as its message,
    so that it is recorded once and not retried; a diverged run comes back as train() returns it."""
    last = [0.0]

    def callback(event: ProgressEvent):
        now = time.monotonic()
        if report is not None and event.kind == "step" and (event.step == 1 or now - last[0] >= REPORT_EVERY_S):
            last[0] = now
            report(TrialProgress(key, event.step, event.total_steps, event.loss))
        return "stop" if should_stop is not None and should_stop() else None

    started = time.perf_counter()
    try:
        return train(config, callback)
    except (Exception, MemoryError) as exc:  # the trial's own failure, recorded as such
        return failed_result(config, f"{type(exc).__name__}: {' '.join(str(exc).split())}",
                             time.perf_counter() - started)


def failed_result(config: TrainConfig, message: str, wall_time: float = 0.0) -> RunResult:
    """The RunResult of a trial that did not train: status "failed", no metrics."""
    final = {"test_acc": None, "test_acc_raw": None, "train_acc": None, "loss": None}
    return RunResult(config=config, history=new_history(), final=final, status="failed", message=message,
                     wall_time=wall_time, device="none")
