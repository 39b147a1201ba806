"""A real Ray cluster on 127.0.0.1 for the tests: a head and worker nodes of one CPU each, started
with `ray start --block` in a process group of their own and stopped by that group's id. It uses
Ray's token authentication as a real cluster would (Ray 2.60 turns it on for `ray start --head`, and
a node or driver without the token is refused): one random token in RAY_AUTH_TOKEN for the nodes
and, while the cluster runs, for this process and the drivers it starts."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")
_AUTH = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")
_COMMON = ("--block", "--num-cpus", "1", "--disable-usage-stats", "--node-ip-address=127.0.0.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(RAY), "start", *args, *_COMMON], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the node's process group, SIGKILL to what is left after 15 s."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # workers the node leaves behind
            except ProcessLookupError:
                pass
        return


def _alive_nodes(address: str) -> int:
    code = ("import ray; ray.init(address=%r, log_to_driver=False, configure_logging=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else 0


@contextmanager
def ray_cluster(nodes: int = 2):
    """Yield (address "127.0.0.1:PORT", the node processes) of a cluster with `nodes` one-CPU
    nodes, once all of them are alive; every node's process group is stopped afterwards."""
    saved = {name: os.environ.get(name) for name in _AUTH}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    address = f"127.0.0.1:{port}"
    processes = [_start(["--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", str(temp)],
                        temp / "head.log")]
    started = False
    try:
        deadline = time.monotonic() + 300  # a busy 2-core CI machine
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        for i in range(1, nodes):
            processes.append(_start([f"--address={address}"], temp / f"node{i}.log"))
        while _alive_nodes(address) < nodes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray test cluster did not start ({_alive_nodes(address)} of {nodes} nodes "
                                   f"alive); logs kept in {temp}:\n{_log_tails(temp)}")
            time.sleep(2)
        started = True
        yield address, processes
    finally:
        for process in reversed(processes):
            _stop(process)
        if started:
            shutil.rmtree(temp, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _log_tails(folder: Path, lines: int = 15) -> str:
    """The last lines of each node's log and of Ray's own logs there, for a cluster that did not start."""
    logs = [*sorted(folder.glob("*.log")), *sorted(folder.glob("session_latest/logs/*.err"))]
    return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
                     for log in logs)


def _parent(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])


def _in_cluster(pid: int, groups: set[int]) -> bool:
    """Whether `pid` descends from a process of the cluster's nodes (Ray puts each worker in a
    process group of its own, under its node's raylet)."""
    while pid > 1:
        if os.getpgid(pid) in groups:
            return True
        pid = _parent(pid)
    return False


def trial_workers(processes) -> list[int]:
    """Pids of the cluster's processes that are running sweep trials now (titled ray::_ray_batch),
    found only among the descendants of the cluster's own nodes."""
    groups = {p.pid for p in processes}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            if title.startswith("ray::_ray_batch") and _in_cluster(int(entry.name), groups):
                found.append(int(entry.name))
        except (OSError, ProcessLookupError, ValueError, IndexError):
            continue
    return found
