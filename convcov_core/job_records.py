"""Comparison jobs recorded in the run store's SQLite file (table `jobs`), so that a job outlives the
server process that ran it: its plan (compare.ComparisonPlan, learned covariances included), the
stored comparison its runs go to as they finish, its state, and the process running it.

A job recorded as running whose process is gone (a server killed, even with SIGKILL, which leaves
no chance to write anything) is interrupted: `interrupted()` notes it so and lists it, and `claim`
hands it to this process to run the rest. A process is named by host, pid and the time it started
(so a pid used again, as in a restarted container, is another process); a job recorded by another
host counts as interrupted, as one server runs on one store.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .compare import ComparisonPlan
from .runs import utc_timestamp
from .sqlite_file import SQLiteFile
from .train import TrainConfig

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    label TEXT NOT NULL,
    owner TEXT,
    name TEXT,
    plan TEXT NOT NULL,
    covariances BLOB,
    comparison_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    process TEXT NOT NULL
);
"""

_BASE = ""  # the base config's key among the plan's covariances (a variant's is its name)


@dataclass
class JobRecord:
    """One recorded job. state: "running", "interrupted", "done", "cancelled" or "failed"."""

    id: int
    created: str
    label: str
    owner: str | None
    name: str | None
    plan: ComparisonPlan
    comparison_id: int
    state: str


def this_process() -> str:
    """This process as jobs record it: host, pid and start time."""
    return _process_name(os.getpid())


def _process_name(pid: int) -> str:
    return f"{socket.gethostname()} {pid} {_start_time(pid)}"


def _start_time(pid: int) -> str:
    """When process `pid` started, in clock ticks since boot (Linux); '' where /proc cannot say."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(process: str) -> bool:
    """Whether the process named `process` (this_process() of it) still runs on this host."""
    host, pid, started = (process.split(" ") + ["", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process with that pid
        pass
    return _process_name(int(pid)) == process


class JobRecords:
    """The jobs table of the run store at `path`."""

    def __init__(self, path: str | Path):
        self._db = SQLiteFile(path, _SCHEMA)

    def add(self, plan: ComparisonPlan, comparison_id: int, label: str, owner: str | None = None,
            name: str | None = None) -> int:
        """Record a job that this process starts running now; its id."""
        text, tensors = _plan_parts(plan)
        with self._db.transaction() as conn:
            return conn.execute(
                "INSERT INTO jobs (created, label, owner, name, plan, covariances, comparison_id, state, process) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                (utc_timestamp(), label, owner, name, text, tensors, comparison_id, this_process())).lastrowid

    def end(self, job_id: int, state: str) -> None:
        """The job has ended in `state` ("done", "cancelled" or "failed")."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE jobs SET state = ? WHERE id = ?", (state, job_id))

    def interrupted(self) -> list[JobRecord]:
        """Jobs whose process is gone before they ended, newest first; those still recorded as
        running are recorded as interrupted now (where the store can be written)."""
        with self._db.connection() as conn:
            running = conn.execute("SELECT id, process FROM jobs WHERE state = 'running'").fetchall()
        dead = [job_id for job_id, process in running if not _alive(process)]
        if dead and self._db.read_only is None:
            with self._db.transaction() as conn:
                conn.executemany("UPDATE jobs SET state = 'interrupted' WHERE id = ? AND state = 'running'",
                                 [(job_id,) for job_id in dead])
        with self._db.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE state = 'interrupted' OR id IN "
                                f"({','.join('?' * len(dead))}) ORDER BY id DESC", dead).fetchall()
        return [_record(row) for row in rows]

    def claim(self, job_id: int, state: str = "running") -> JobRecord:
        """Take an interrupted job over: recorded as `state` ("running": by this process, which runs
        the rest; "cancelled": kept as it is); ValueError when it is not interrupted (resumed or
        ended in another tab, or no such job)."""
        self.interrupted()
        with self._db.transaction() as conn:
            if not conn.execute("UPDATE jobs SET state = ?, process = ? WHERE id = ? AND state = 'interrupted'",
                                (state, this_process(), job_id)).rowcount:
                raise ValueError(f"job {job_id} is not an interrupted job: it was resumed or set aside already")
            return _record(conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone())


_COLUMNS = "id, created, label, owner, name, plan, covariances, comparison_id, state"


def _record(row) -> JobRecord:
    job_id, created, label, owner, name, plan, covariances, comparison_id, state = row
    return JobRecord(job_id, created, label, owner, name, _plan(plan, covariances), comparison_id, state)


def _plan_parts(plan: ComparisonPlan) -> tuple[str, bytes | None]:
    """(the plan as JSON, its covariances as safetensors bytes or None): the base config's and each
    variant's own (the learned ones), in float64 as given, so a resumed run starts from the very
    matrices the interrupted job had."""
    lists = {_BASE: plan.base.covariances, **{name: o.get("covariances") for name, o in plan.variants.items()}}
    tensors = {f"{key}/{i}": torch.as_tensor(c).contiguous() for key, found in lists.items()
               for i, c in enumerate(found or [])}
    variants = {name: {k: None if k == "covariances" else v for k, v in o.items()} for name, o in plan.variants.items()}
    text = json.dumps({"base": plan.base.to_dict(), "variants": variants, "references": plan.references,
                       "seeds": plan.seeds, "ensemble": plan.ensemble})
    return text, save_safetensors(tensors) if tensors else None


def _plan(text: str, blob: bytes | None) -> ComparisonPlan:
    d = json.loads(text)
    tensors = load_safetensors(blob) if blob else {}

    def covariances(key: str) -> list | None:
        found = sorted((int(k.rpartition("/")[2]), t) for k, t in tensors.items() if k.rpartition("/")[0] == key)
        return [t for _, t in found] or None

    base = TrainConfig.from_dict(d["base"])
    base.covariances = covariances(_BASE)
    variants = {name: {k: covariances(name) if k == "covariances" else v for k, v in o.items()}
                for name, o in d["variants"].items()}
    return ComparisonPlan(base, variants, d["references"], d["seeds"], d["ensemble"])
