"""Sweeps in the run store's SQLite file: each sweep's spec and its trials' keys (table `sweeps`);
each trial's result is an ordinary stored run kept under its key (RunStore.save_once), so two
sweeps that share a trial share its run, and a trial is stored once however many drivers race.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..runs import RunStore, utc_timestamp
from ..sqlite_file import SQLiteFile
from .grid import Sweep, Trial

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    name TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    spec TEXT NOT NULL,
    keys TEXT NOT NULL
);
"""


@dataclass
class SweepSummary:
    """One line of the sweep list: trials in the grid, finished (ok, diverged or failed), failed."""

    name: str
    created: str
    n_trials: int
    n_finished: int
    n_failed: int
    spec: dict


class SweepStore:
    """The sweeps of the run store at `path` (default: runs.db in $CONVCOV_HOME)."""

    def __init__(self, path: str | Path | None = None):
        self.runs = RunStore(path)
        self._db = SQLiteFile(self.runs.path, _SCHEMA)

    def check_writable(self) -> None:
        """StoreReadOnly (a ValueError naming a way out) when trials could not be stored here."""
        self.runs.check_writable()
        self._db.check_writable()

    def register(self, sweep: Sweep, trials: list[Trial]) -> None:
        """Record a new sweep, or accept the same grid again under its name (a resume); ValueError
        when the name is taken by another grid. Grids are compared canonically (Sweep.canonical_spec),
        so a sweep stored before a TrainConfig field was added is the same grid with that field at its
        Setting.before."""
        spec = sweep.to_dict()
        with self._db.transaction() as conn:
            row = conn.execute("SELECT spec FROM sweeps WHERE name = ?", (sweep.name,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO sweeps (name, created, spec, keys) VALUES (?, ?, ?, ?)",
                             (sweep.name, utc_timestamp(), json.dumps(spec), json.dumps([t.key for t in trials])))
            elif Sweep.canonical_spec(json.loads(row[0])) != Sweep.canonical_spec(spec):  # axes keep their order
                raise ValueError(f"a sweep called {sweep.name!r} already exists with another grid; "
                                 f"`sweep resume {sweep.name}` continues it, or choose another --name")

    def get(self, name: str) -> Sweep:
        """The sweep called `name`; ValueError when there is none."""
        return Sweep.from_dict(json.loads(self._row(name)[0]))

    def keys(self, name: str) -> list[str]:
        """The keys of the sweep's trials, in the order they run."""
        return json.loads(self._row(name)[1])

    def _row(self, name: str):
        with self._db.connection() as conn:
            row = conn.execute("SELECT spec, keys FROM sweeps WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ValueError(f"no sweep called {name!r} in {self.runs.path}; `sweep list` shows the sweeps there")
        return row

    def list(self) -> list[SweepSummary]:
        """All sweeps, newest first, with how many of their trials are in the store."""
        with self._db.connection() as conn:
            rows = conn.execute("SELECT name, created, spec, keys FROM sweeps ORDER BY created DESC, name").fetchall()
        out = []
        for name, created, spec, keys in rows:
            keys = json.loads(keys)
            found = self.runs.once_results(keys).values()
            out.append(SweepSummary(name=name, created=created, n_trials=len(keys), n_finished=len(found),
                                    n_failed=sum(r["status"] != "ok" for r in found), spec=json.loads(spec)))
        return out

    def finished(self, keys) -> dict[str, dict]:
        """Stored results of these trial keys (RunStore.once_results)."""
        return self.runs.once_results(keys)

    def save(self, trial: Trial, result, sweep_name: str) -> int | None:
        """Store a trial's run under its key unless it is there already; its id, or None."""
        result.variant = trial.init
        return self.runs.save_once(trial.key, lambda: result, name=f"sweep {sweep_name}")

    def delete(self, name: str) -> int:
        """Remove the sweep and the runs of its trials that no other sweep lists; how many runs went."""
        keys = set(self.keys(name))
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM sweeps WHERE name = ?", (name,))
            for (other,) in conn.execute("SELECT keys FROM sweeps").fetchall():
                keys -= set(json.loads(other))
        return self.runs.forget(sorted(keys))

