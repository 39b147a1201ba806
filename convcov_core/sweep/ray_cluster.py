"""The Ray executor: every batch of trials a Ray task on a cluster (or on a Ray started on this
machine): a grid cell's compatible trials trained together as one ensemble (worker.trial_batches),
or one trial per task without the ensemble.

Each task declares what it needs (cpus_per_trial CPUs, gpus_per_trial GPUs, fractions allowed) and
trains with that many torch threads; workers import convcov from the installed package, results
travel back to the driver, which alone writes the run store. A task whose worker dies is retried by
Ray (MAX_ATTEMPTS starts in all); a trial that fails for a reason of its own comes back as a
"failed" result (worker.run_trial) and is not retried. Progress reports reach the driver through a
ray.util.queue.Queue, sent without waiting (a task that waits on Ray lends its CPUs to the next
one). Ray is an optional dependency (`pip install 'convcov[ray]'`); one Ray connection per process
is kept across calls (a Streamlit rerun finds it in place).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from .local import MAX_ATTEMPTS
from .worker import batching, failed_result, run_batch, trial_batches

INSTALL_HINT = "pip install 'convcov[ray]' (or pip install ray)"
_POLL_S = 0.5
_CONNECT_TIMEOUT_S = 3.0


class ClusterUnreachable(ValueError):
    """Ray is not installed, or the cluster's address does not answer; the message says which."""


def import_ray():
    """The ray module; ClusterUnreachable saying how to install it where it is missing."""
    try:
        import ray
    except ImportError:
        raise ClusterUnreachable(f"--executor ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


def _resolve_auto(ray) -> str:
    """The cluster Ray's "auto" means: RAY_ADDRESS, else the address the last `ray start` on this
    machine recorded (<RAY_TMPDIR or /tmp>/ray/ray_current_cluster), else a running one found here.
    Resolved here so that a stale record gets the bounded check below, not Ray's long retries."""
    from ray._private.services import get_ray_address_from_environment  # Ray's own "auto"

    try:
        return get_ray_address_from_environment("auto", None)
    except ConnectionError:
        raise ClusterUnreachable("--ray-address auto: no Ray cluster runs on this machine; start one with "
                                 "`ray start --head` or give its host:port") from None


def check_reachable(address: str) -> None:
    """ClusterUnreachable unless host:port of `address` ("host:port" or "ray://host:port") accepts
    a TCP connection within a few seconds."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise ClusterUnreachable(f"Ray address {address!r} is not 'auto', 'host:port' or 'ray://host:port'")
    try:
        socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterUnreachable(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                                 "`ray start --head` or check --ray-address / CONVCOV_RAY_ADDRESS") from None


def connect(address: str | None = None, num_cpus: int | None = None):
    """The ray module, connected to the cluster at `address` (None: a Ray started on this machine
    with num_cpus CPUs, no dashboard). A process already connected stays connected."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address == "auto":
        address = _resolve_auto(ray)
    if address is not None:
        check_reachable(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        if address is None:
            ray.init(address="local", num_cpus=num_cpus, **options)  # a new one, never a cluster found here
        else:
            ray.init(address=address, **options)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        raise ClusterUnreachable(f"could not connect to Ray at {address or 'this machine'}: "
                                 f"{' '.join(str(exc).split())[:300]}") from None
    return ray


def _ray_batch(configs: list, keys: list[str], progress):
    """The batch's results, its progress sent to the driver's queue without waiting for it: a task
    blocked in ray.get (Queue.put_nowait waits for the queue's answer) hands its CPUs back to Ray,
    which then starts another task on them, so more trials would train at once than there are CPUs."""
    return run_batch(configs, keys, report=progress.actor.put_nowait.remote)


def alive_nodes(ray) -> int:
    """The nodes of the connected cluster that are alive."""
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def cluster_slots(resources: dict, cpus_per_trial: float, gpus_per_trial: float) -> int:
    """Trials that run at once on a cluster's CPUs (and GPUs, when trials ask for them)."""
    fits = [resources.get("CPU", 0) / cpus_per_trial]
    if gpus_per_trial:
        fits.append(resources.get("GPU", 0) / gpus_per_trial)
    return max(1, int(min(fits)))


def cluster_text(where: str, nodes: int, resources: dict, cpus_per_trial: float, gpus_per_trial: float,
                 ensemble: bool | None) -> str:
    """'Ray at host:port: 2 node(s), 2 CPU(s), 0 GPU(s); 1 CPU(s) and 0 GPU(s) per task, ...'."""
    return (f"{where}: {nodes} node(s), {resources.get('CPU', 0):g} CPU(s), {resources.get('GPU', 0):g} GPU(s); "
            f"{cpus_per_trial:g} CPU(s) and {gpus_per_trial:g} GPU(s) per task, {batching(ensemble)}")


class RayExecutor:
    """Trials as Ray tasks of cpus_per_trial CPUs and gpus_per_trial GPUs each, on the cluster at
    `address` (None: a Ray started here with `workers` CPUs, default one per core); ensemble: a task
    trains a batch of compatible trials together (worker.trial_batches; None: where ensemble.pays_off),
    else one trial."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, cpus_per_trial: float = 1,
                 gpus_per_trial: float = 0, ensemble: bool | None = None):
        self.ensemble = ensemble
        if not cpus_per_trial > 0 or gpus_per_trial < 0:
            raise ValueError(f"a trial needs > 0 CPUs and >= 0 GPUs, got {cpus_per_trial} and {gpus_per_trial}")
        self.address, self.cpus_per_trial, self.gpus_per_trial = address, cpus_per_trial, gpus_per_trial
        self.ray = connect(address, workers)
        self.resources = self.ray.cluster_resources()

    @property
    def slots(self) -> int:
        """Trials that run at once on the cluster's CPUs (and GPUs, when trials ask for them)."""
        return cluster_slots(self.resources, self.cpus_per_trial, self.gpus_per_trial)

    @property
    def threads(self) -> int:
        """Torch threads each trial trains with: the whole part of cpus_per_trial, at least 1."""
        return max(1, int(self.cpus_per_trial))

    def describe(self) -> str:
        where = f"Ray at {self.address}" if self.address else "Ray started on this machine"
        return cluster_text(where, alive_nodes(self.ray), self.resources, self.cpus_per_trial, self.gpus_per_trial,
                            self.ensemble)

    def run(self, trials, on_progress, should_stop):
        """As LocalPool.run: yield (trial, RunResult) as tasks finish; should_stop() True cancels
        every task left (no results come back for them)."""
        ray = self.ray
        from ray.util.queue import Queue

        progress = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(_ray_batch).options(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial,
                                              max_retries=MAX_ATTEMPTS - 1, retry_exceptions=False)
        refs = {task.remote([t.config.replace(threads=self.threads) for t in batch], [t.key for t in batch],
                            progress): batch
                for batch in trial_batches(list(trials), self.slots, self.ensemble)}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=_POLL_S)
                _drain(progress, on_progress)
                if should_stop():
                    for ref in refs:
                        ray.cancel(ref, force=True)
                    return
                for ref in ready:
                    batch = refs.pop(ref)
                    try:
                        results = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # its worker died MAX_ATTEMPTS times
                        results = [failed_result(t.config, f"Ray could not run it ({type(exc).__name__}) "
                                                           f"after {MAX_ATTEMPTS} attempts") for t in batch]
                    yield from zip(batch, results)
            _drain(progress, on_progress)
        finally:
            ray.kill(progress.actor)


def _drain(progress, on_progress) -> None:
    """Hand every report waiting in the Ray queue to on_progress."""
    waiting = progress.size()
    if waiting:
        for item in progress.get_nowait_batch(waiting):
            on_progress(item)
