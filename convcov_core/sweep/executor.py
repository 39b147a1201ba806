"""Executor: what run_sweep hands trials to and takes results back from (the driver alone stores
them). local.LocalPool runs them in worker processes on this machine, ray_cluster.RayExecutor as Ray
tasks on a cluster."""

from __future__ import annotations

from typing import Callable, Iterator, Protocol, runtime_checkable

from ..train import RunResult
from .grid import Trial
from .worker import TrialProgress


@runtime_checkable
class Executor(Protocol):
    """Runs trials somewhere and yields their results; `name` is how the CLI and the app call it."""

    name: str

    @property
    def slots(self) -> int:
        """Trials that run at once."""

    @property
    def threads(self) -> int:
        """Torch threads each trial trains with."""

    def describe(self) -> str:
        """One line: where the trials run, how many at once, and whether compatible ones train together."""

    def run(self, trials: list[Trial], on_progress: Callable[[TrialProgress], None],
            should_stop: Callable[[], bool]) -> Iterator[tuple[Trial, RunResult]]:
        """Yield (trial, RunResult) as trials finish, in any order; on_progress(TrialProgress) while
        they run. should_stop() True: the trials left are cancelled (a running one may come back with
        status "cancelled", which is not stored) and the others not started."""
