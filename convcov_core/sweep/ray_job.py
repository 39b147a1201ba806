"""Ray sweeps for a process that must never become a Ray driver itself: the app's server, which Ray's
core worker would end, for every visitor, when the cluster's GCS goes away ("Failed to connect to
GCS ... The program will terminate").

RaySpec is what such a process knows of a cluster: what a probe found there, asked from a child
process that connects and leaves (nodes, CPUs, GPUs), and how to build the RayExecutor. run_sweep_apart
runs a sweep in a child process of its own, the sweep's driver (spawned, so Ray starts clean there):
it alone connects to Ray and writes the run store; its events come back through a queue, Cancel
reaches it through an event, and it ends with its parent (local.exit_with_parent). A driver that
dies before the sweep's end (Ray ended it, or it was killed) raises DriverLost in the caller, whose
own process goes on; the trials stored by then stay, and a resume runs the rest.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import torch

from .grid import Sweep
from .local import exit_with_parent
from .ray_cluster import (
    ClusterUnreachable,
    RayExecutor,
    alive_nodes,
    check_reachable,
    cluster_slots,
    cluster_text,
    connect,
)
from .run import SweepEvent, SweepOutcome, run_sweep
from .store import SweepStore

_POLL_S = 0.5
PROBE_TIMEOUT_S = 180.0  # a driver's start on a busy machine, with Ray imported afresh
_END_S = 30.0  # a driver told to stop (or whose caller failed) gets this long before it is killed


class DriverLost(RuntimeError):
    """The sweep's driver process ended before the sweep did; the message says how."""


@dataclass(frozen=True)
class RaySpec:
    """A Ray cluster as a probe found it (address None: a Ray that each sweep's driver starts on this
    machine), and the tasks' needs, as RayExecutor takes them."""

    address: str | None
    resources: dict = field(default_factory=dict)
    nodes: int = 1
    workers: int | None = None
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    ensemble: bool | None = None
    name: ClassVar[str] = "ray"

    @property
    def slots(self) -> int:
        return cluster_slots(self.resources, self.cpus_per_trial, self.gpus_per_trial)

    def describe(self) -> str:
        where = f"Ray at {self.address}" if self.address else "Ray started on this machine for each sweep"
        return cluster_text(where, self.nodes, self.resources, self.cpus_per_trial, self.gpus_per_trial, self.ensemble)

    def executor(self) -> RayExecutor:
        """The executor, connected to Ray from the calling process (the sweep's driver)."""
        return RayExecutor(self.address, self.workers, self.cpus_per_trial, self.gpus_per_trial, self.ensemble)


def probe(address: str | None, workers: int | None = None, **needs) -> RaySpec:
    """The RaySpec of the cluster at `address`, asked from a child process that connects and leaves;
    ClusterUnreachable saying why there is none. address None: the Ray a driver would start here,
    this machine's CPUs (or `workers`) and GPUs, with nothing started. needs: RaySpec's
    cpus_per_trial, gpus_per_trial, ensemble."""
    if address is None:
        resources = {"CPU": float(workers or os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}
        return RaySpec(None, resources, 1, workers, **needs)
    check_reachable(address)
    try:
        answer = _in_child("the Ray probe process", _probe, address)
    except DriverLost as exc:
        raise ClusterUnreachable(f"could not ask Ray at {address}: {exc}") from None
    if isinstance(answer, BaseException):
        raise answer
    resources, nodes = answer
    return RaySpec(address, resources, nodes, workers, **needs)


def _probe(answers, address: str) -> None:
    ray = connect(address)
    answers.put(("outcome", (dict(ray.cluster_resources()), alive_nodes(ray))))


def run_sweep_apart(sweep: Sweep, store_path: str | Path, spec: RaySpec,
                    on_event: Callable[[SweepEvent], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> SweepOutcome:
    """run_sweep(sweep, SweepStore(store_path), spec.executor(), ...) in a driver process of its own;
    on_event and should_stop are called here. DriverLost when the driver ends before the sweep;
    an error in the driver is raised here."""
    outcome = _in_child("the sweep's Ray driver process", _drive, sweep, str(store_path), spec, on_event=on_event,
                        should_stop=should_stop or (lambda: False))
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _drive(answers, sweep: Sweep, store_path: str, spec: RaySpec, stop) -> None:
    """The driver: run_sweep, its events and outcome sent back. An error of Ray's own (a trial's
    failure comes back as a failed result, RayExecutor.run) means the cluster failed under the
    sweep: DriverLost, as when Ray ends the driver."""
    try:
        outcome = run_sweep(sweep, SweepStore(store_path), spec.executor(), lambda e: answers.put(("event", e)),
                            stop.is_set)
    except Exception as exc:
        if not type(exc).__module__.startswith("ray."):
            raise
        raise DriverLost(f"Ray failed under the sweep ({type(exc).__name__}: {exc})") from None
    answers.put(("outcome", outcome))


def _in_child(what: str, target, *args, on_event=None, should_stop=None):
    """target(answers, *args[, stop]) in a spawned child that ends with this process: its outcome, or
    the exception it raised; its events go to on_event. With should_stop, the child's stop event is
    target's last argument and is set once should_stop() is true; without, an outcome must come
    within PROBE_TIMEOUT_S. DriverLost when the child ends without an outcome, or none comes in time."""
    context = multiprocessing.get_context("spawn")
    answers, stop = context.Queue(), context.Event()
    child = context.Process(target=_child, args=(target, answers, *args, *([stop] if should_stop else [])),
                            name="convcov-ray-driver", daemon=True)
    child.start()
    deadline = None if should_stop else time.monotonic() + PROBE_TIMEOUT_S
    try:
        while deadline is None or time.monotonic() < deadline:
            if should_stop is not None and should_stop():
                stop.set()
            try:
                kind, payload = answers.get(timeout=_POLL_S)
            except queue.Empty:
                if child.is_alive():
                    continue
                try:  # what it sent just before it ended is in the pipe by now
                    kind, payload = answers.get(timeout=_POLL_S)
                except queue.Empty:
                    raise DriverLost(f"{what} ended before it had finished ({_how(child.exitcode)}); Ray ends a "
                                     "driver whose cluster's GCS has gone away") from None
            if kind != "event":
                return payload
            if on_event is not None:
                on_event(payload)
        raise DriverLost(f"{what} gave no answer in {PROBE_TIMEOUT_S:.0f} s")
    finally:
        stop.set()
        child.join(_END_S)
        if child.is_alive():
            child.kill()
            child.join()


def _child(target, answers, *args) -> None:
    """The child's body: target, its exception sent back as the outcome (as a RuntimeError with its
    text when it cannot be pickled)."""
    exit_with_parent()
    try:
        target(answers, *args)
    except Exception as exc:
        try:
            pickle.dumps(exc)
        except Exception:
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        answers.put(("outcome", exc))


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"
