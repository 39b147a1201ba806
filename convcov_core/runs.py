"""Run store: training runs and comparisons in one SQLite file ($CONVCOV_HOME/runs.db by default).

WAL mode with a busy timeout, so two processes can write at once; every save is one transaction,
so a process killed mid-save leaves every earlier run intact. A store that cannot be written (a
read-only file, folder or mount) can still be read; saving to it raises sqlite_file.StoreReadOnly, and
check_writable() says so before the work. Nothing is pickled: configs, histories
and metrics are JSON, covariances are float32 bytes of their upper triangle (k^2 (k^2 + 1) / 2
numbers per layer), state dicts are safetensors bytes.

This module is the store itself (tables, writing, reading); `run_codec` turns a run's parts into
column values and back, `run_export` writes a stored run as JSON and CSV files.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .compare import ComparisonResult, summarize
from .paths import runs_path
from .run_codec import (
    covariance_kernel_size,
    decode_covariance,
    encode_covariance,
    rows_to_json,
    run_kernel_size,
    stored_final,
    stored_precision,
)
from .run_export import export_run, write_history_csv
from .sqlite_file import SQLiteFile
from .train import RunResult, TrainConfig

__all__ = ["ComparisonSummary", "RunStore", "RunSummary", "decode_covariance", "encode_covariance",
           "write_history_csv"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS comparisons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    name TEXT,
    base_config TEXT NOT NULL,
    variants TEXT NOT NULL,
    refs TEXT NOT NULL,
    seeds TEXT NOT NULL,
    rows TEXT NOT NULL,
    verdicts TEXT NOT NULL,
    wall_time REAL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    name TEXT,
    comparison_id INTEGER,
    variant TEXT,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    kernel_size INTEGER,
    depth INTEGER,
    init TEXT NOT NULL,
    freeze_filters INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    test_acc REAL,
    train_acc REAL,
    loss REAL,
    wall_time REAL NOT NULL,
    device TEXT NOT NULL,
    config TEXT NOT NULL,
    history TEXT NOT NULL,
    final TEXT NOT NULL,
    layer_names TEXT NOT NULL,
    state_dict BLOB
);
CREATE INDEX IF NOT EXISTS runs_by_comparison ON runs (comparison_id);
CREATE TABLE IF NOT EXISTS covariances (
    run_id INTEGER NOT NULL,
    role TEXT NOT NULL,
    layer INTEGER NOT NULL,
    kernel_size INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, role, layer)
);
CREATE TABLE IF NOT EXISTS once (
    key TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL
);
"""

_LEARNED, _INIT = "learned", "init"  # covariance roles: filters at the end / learned-init input


@dataclass
class RunSummary:
    """One line of the run list (no history, covariances or weights; has_* say what is stored)."""

    id: int
    created: str
    name: str | None
    dataset: str
    model: str
    kernel_size: int | None
    depth: int | None
    init: str
    freeze_filters: bool
    seed: int
    status: str
    test_acc: float | None
    wall_time: float
    comparison_id: int | None
    has_covariances: bool
    variant: str | None = None
    has_weights: bool = False


@dataclass
class ComparisonSummary:
    """One line of the comparison list."""

    id: int
    created: str
    name: str | None
    dataset: str
    model: str
    variants: list
    seeds: list
    status: str
    verdict: str
    wall_time: float | None
    n_runs: int


def _add_metric_column(conn) -> None:
    """Stores written before comparisons recorded the metric they judge get the column (NULL:
    test_acc); two processes opening one old store at once both try, and one finds it there."""
    if "metric" in {row[1] for row in conn.execute("PRAGMA table_info(comparisons)")}:
        return
    try:
        conn.execute("ALTER TABLE comparisons ADD COLUMN metric TEXT")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):
            raise


class RunStore:
    """Training runs and comparisons in SQLite; see the module docstring for the guarantees."""

    def __init__(self, path: str | Path | None = None):
        self._db = SQLiteFile(runs_path() if path is None else path, _SCHEMA, _add_metric_column)
        self.path = self._db.path

    def check_writable(self) -> None:
        """sqlite_file.StoreReadOnly (a ValueError naming a way out) when nothing can be saved here: call
        it before work whose result is to be saved, so that a read-only store refuses before training."""
        self._db.check_writable()

    # -- writing ---------------------------------------------------------------------------------

    def save(self, result: RunResult, *, name: str | None = None, comparison_id: int | None = None) -> int:
        """Store one run (and its covariances and state dict); return its id, also set on result.id."""
        with self._db.transaction() as conn:
            result.id = self._insert_run(conn, result, name, comparison_id)
        return result.id

    def save_once(self, key: str, make_result, *, name: str | None = None) -> int | None:
        """Store the run `make_result()` returns unless a run was stored under `key` before (even
        one deleted since); its id, or None. Two processes racing store it once."""
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM once WHERE key = ?", (key,)).fetchone():
                return None
            result = make_result()
            result.id = self._insert_run(conn, result, name, None)
            conn.execute("INSERT INTO once (key, run_id) VALUES (?, ?)", (key, result.id))
        return result.id

    def once_id(self, key: str) -> int | None:
        """The id of the run stored under `key` by save_once, while that run still exists."""
        with self._db.connection() as conn:
            row = conn.execute("SELECT once.run_id FROM once JOIN runs ON runs.id = once.run_id "
                               "WHERE once.key = ?", (key,)).fetchone()
        return row[0] if row else None

    def once_results(self, keys) -> dict[str, dict]:
        """For each key that a stored run is kept under (save_once): that run's id, status, message,
        final metrics and wall time, without its history, covariances or weights."""
        keys, found = list(keys), {}
        with self._db.connection() as conn:
            for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, run_id, status, message, final, wall_time in conn.execute(
                        "SELECT once.key, runs.id, runs.status, runs.message, runs.final, runs.wall_time "
                        f"FROM once JOIN runs ON runs.id = once.run_id WHERE once.key IN ({marks})", chunk):
                    found[key] = {"run_id": run_id, "status": status, "message": message,
                                  "final": stored_final(json.loads(final)), "wall_time": wall_time}
        return found

    def forget(self, keys) -> int:
        """Delete the runs kept under `keys` (save_once) and the keys themselves, so that save_once
        stores them again; the number of runs deleted."""
        keys, deleted = list(keys), 0
        with self._db.transaction() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                ids = f"SELECT run_id FROM once WHERE key IN ({marks})"
                conn.execute(f"DELETE FROM covariances WHERE run_id IN ({ids})", chunk)
                deleted += conn.execute(f"DELETE FROM runs WHERE id IN ({ids})", chunk).rowcount
                conn.execute(f"DELETE FROM once WHERE key IN ({marks})", chunk)
        return deleted

    def save_comparison(self, cmp: ComparisonResult, *, name: str | None = None) -> int:
        """Store a comparison and all of its runs in one transaction; return the comparison id."""
        with self._db.transaction() as conn:
            cmp.id = conn.execute(
                "INSERT INTO comparisons (created, name, base_config, variants, refs, seeds, rows, "
                "verdicts, wall_time, status, metric) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (utc_timestamp(), name, _json(cmp.base_config.to_dict()), json.dumps(cmp.variants_dict()),
                 json.dumps(cmp.references), json.dumps(cmp.seeds), _json(rows_to_json(cmp.rows)),
                 json.dumps(cmp.verdicts), cmp.wall_time, cmp.status, cmp.metric)).lastrowid
            for runs in cmp.runs.values():
                for run in runs:
                    run.id = self._insert_run(conn, run, name, cmp.id)
        return cmp.id

    def update_comparison(self, cmp: ComparisonResult) -> None:
        """Write the table, verdicts, wall time and status of the stored comparison cmp.id, whose runs
        were saved as they finished (save(run, comparison_id=...)); ValueError if it is gone."""
        with self._db.transaction() as conn:
            if not conn.execute("UPDATE comparisons SET rows = ?, verdicts = ?, wall_time = ?, status = ? WHERE id = ?",
                                (_json(rows_to_json(cmp.rows)), json.dumps(cmp.verdicts), cmp.wall_time, cmp.status,
                                 cmp.id)).rowcount:
                raise ValueError(f"no comparison with id {cmp.id} in {self.path}")

    def set_comparison_status(self, comparison_id: int, status: str) -> None:
        """Change a stored comparison's status only (e.g. "interrupted" when the job running it died)."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE comparisons SET status = ? WHERE id = ?", (status, comparison_id))

    def _insert_run(self, conn, result: RunResult, name, comparison_id) -> int:
        cfg = result.config
        state = save_safetensors(result.state_dict) if result.state_dict else None
        cur = conn.execute(
            "INSERT INTO runs (created, name, comparison_id, variant, dataset, model, kernel_size, depth, "
            "init, freeze_filters, seed, status, message, test_acc, train_acc, loss, wall_time, device, "
            "config, history, final, layer_names, state_dict) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (utc_timestamp(), name, comparison_id, result.variant, cfg.dataset, cfg.model, run_kernel_size(result),
             len(result.layer_names) or None, cfg.init, int(cfg.freeze_filters), cfg.seed, result.status,
             result.message, result.final.get("test_acc"), result.final.get("train_acc"),
             result.final.get("loss"), result.wall_time, result.device,
             _json(dict(cfg.to_dict(), precision=result.precision)),  # what "auto" resolved to
             json.dumps(result.history), json.dumps(result.final), json.dumps(result.layer_names), state))
        run_id = cur.lastrowid
        for role, covs in ((_LEARNED, result.covariances), (_INIT, cfg.covariances or [])):
            conn.executemany(
                "INSERT INTO covariances (run_id, role, layer, kernel_size, data) VALUES (?, ?, ?, ?, ?)",
                [(run_id, role, i, covariance_kernel_size(S), encode_covariance(S))
                 for i, S in enumerate(covs)])
        return run_id

    def delete(self, run_id: int) -> None:
        """Remove one run and its covariances (ValueError if there is no such run)."""
        with self._db.transaction() as conn:
            if conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise ValueError(f"no run with id {run_id} in {self.path}")
            conn.execute("DELETE FROM covariances WHERE run_id = ?", (run_id,))

    def delete_comparison(self, comparison_id: int) -> None:
        """Remove a comparison together with its runs."""
        with self._db.transaction() as conn:
            if conn.execute("DELETE FROM comparisons WHERE id = ?", (comparison_id,)).rowcount == 0:
                raise ValueError(f"no comparison with id {comparison_id} in {self.path}")
            conn.execute("DELETE FROM covariances WHERE run_id IN "
                         "(SELECT id FROM runs WHERE comparison_id = ?)", (comparison_id,))
            conn.execute("DELETE FROM runs WHERE comparison_id = ?", (comparison_id,))

    # -- reading ---------------------------------------------------------------------------------

    def list(self) -> list[RunSummary]:
        """All runs, newest first."""
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT id, created, name, dataset, model, kernel_size, depth, init, freeze_filters, seed, "
                "status, test_acc, wall_time, comparison_id, "
                "EXISTS (SELECT 1 FROM covariances c WHERE c.run_id = runs.id AND c.role = ?), variant, "
                "state_dict IS NOT NULL FROM runs ORDER BY id DESC", (_LEARNED,)).fetchall()
        return [RunSummary(id=r[0], created=r[1], name=r[2], dataset=r[3], model=r[4], kernel_size=r[5],
                           depth=r[6], init=r[7], freeze_filters=bool(r[8]), seed=r[9], status=r[10],
                           test_acc=r[11], wall_time=r[12], comparison_id=r[13],
                           has_covariances=bool(r[14]), variant=r[15], has_weights=bool(r[16]))
                for r in rows]

    def timings(self, limit: int = 200, *, skip=()) -> list[tuple[TrainConfig, float, str]]:
        """(config, wall time in seconds, device) of the newest `limit` runs that finished ("ok"),
        newest first, but the runs whose ids are in `skip`; a config this version cannot read is left out."""
        with self._db.connection() as conn:
            rows = conn.execute("SELECT id, config, wall_time, device FROM runs WHERE status = 'ok' "
                                "ORDER BY id DESC LIMIT ?", (limit + len(skip),)).fetchall()
        timings = []
        for run_id, config, wall_time, device in rows:
            if run_id in skip or len(timings) == limit:
                continue
            try:
                timings.append((TrainConfig.from_dict(json.loads(config)), float(wall_time), device))
            except (ValueError, TypeError, KeyError):
                continue
        return timings

    def get(self, run_id: int) -> RunResult:
        """The stored run with its history, covariances (float64) and state dict."""
        with self._db.connection() as conn:
            return self._read_run(conn, run_id)

    def _read_run(self, conn, run_id: int) -> RunResult:
        row = conn.execute(
            "SELECT config, history, final, status, message, wall_time, device, layer_names, state_dict, "
            "variant FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise ValueError(f"no run with id {run_id} in {self.path}")
        covs = {_LEARNED: [], _INIT: []}
        for role, k, blob in conn.execute(
                "SELECT role, kernel_size, data FROM covariances WHERE run_id = ? ORDER BY role, layer",
                (run_id,)):
            covs[role].append(decode_covariance(blob, k))
        config = TrainConfig.from_dict(json.loads(row[0]))
        config.covariances = covs[_INIT] or None
        return RunResult(config=config, history=json.loads(row[1]), final=stored_final(json.loads(row[2])),
                         status=row[3], message=row[4], wall_time=row[5], device=row[6],
                         layer_names=json.loads(row[7]), covariances=covs[_LEARNED],
                         state_dict=dict(load_safetensors(row[8])) if row[8] else None, id=run_id,
                         variant=row[9], precision=stored_precision(config, row[6]))

    def list_comparisons(self) -> list[ComparisonSummary]:
        """All comparisons, newest first."""
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT id, created, name, base_config, variants, seeds, status, verdicts, wall_time, "
                "(SELECT COUNT(*) FROM runs WHERE comparison_id = comparisons.id) "
                "FROM comparisons ORDER BY id DESC").fetchall()
        out = []
        for r in rows:
            base = json.loads(r[3])
            out.append(ComparisonSummary(id=r[0], created=r[1], name=r[2], dataset=base["dataset"],
                                         model=base["model"], variants=list(json.loads(r[4])),
                                         seeds=json.loads(r[5]), status=r[6],
                                         verdict=" ".join(json.loads(r[7])), wall_time=r[8], n_runs=r[9]))
        return out

    def comparison_state(self, comparison_id: int) -> tuple[str, int] | None:
        """(status, number of runs) of a stored comparison, None when there is none: what changes
        while a job adds runs to it (a cache of comparisons keys on it)."""
        with self._db.connection() as conn:
            row = conn.execute("SELECT status, (SELECT COUNT(*) FROM runs WHERE comparison_id = comparisons.id) "
                               "FROM comparisons WHERE id = ?", (comparison_id,)).fetchone()
        return tuple(row) if row else None

    def get_comparison(self, comparison_id: int) -> ComparisonResult:
        """A stored comparison with all of its runs; its table and verdicts are worked out again
        from the runs by compare.summarize, so every comparison is judged by today's rule."""
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT base_config, variants, refs, seeds, metric, wall_time, status "
                "FROM comparisons WHERE id = ?", (comparison_id,)).fetchone()
            if row is None:
                raise ValueError(f"no comparison with id {comparison_id} in {self.path}")
            variants = json.loads(row[1])
            runs = {name: [] for name in variants}
            for (run_id,) in conn.execute("SELECT id FROM runs WHERE comparison_id = ? ORDER BY id",
                                          (comparison_id,)).fetchall():
                run = self._read_run(conn, run_id)
                runs.setdefault(run.variant, []).append(run)
        seeds, references, metric = json.loads(row[3]), json.loads(row[2]), row[4] or "test_acc"
        table, verdicts = summarize(variants, seeds, runs, references, metric)
        return ComparisonResult(base_config=TrainConfig.from_dict(json.loads(row[0])), variants=variants,
                                seeds=seeds, runs=runs, rows=table, verdicts=verdicts, wall_time=row[5],
                                status=row[6], references=references, id=comparison_id, metric=metric)

    def export(self, run_id: int, path: str | Path) -> tuple[Path, Path]:
        """Write a run as JSON (config, metrics, history, covariances per layer) and its history as CSV
        next to it (same name, .csv); return both paths."""
        return export_run(self.get(run_id), path)


def _json(value) -> str:
    return json.dumps(value, sort_keys=True)


def utc_timestamp() -> str:
    """Now in UTC, ISO 8601 to the second (the created columns)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
