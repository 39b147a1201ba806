"""A sweep's results: the tidy trial table (one row per trial) and the effect of every scheme
against the reference in every cell of the grid, paired over seeds by the one verdict rule
(stats.paired_verdict), with the seeds a cell would need to resolve its effect (stats.seeds_needed).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import stats
from ..models import parse_spec
from ..train import METRICS
from .grid import Sweep
from .store import SweepStore

TRIAL_COLUMNS = ("init", "seed", "status", "test_acc", "test_acc_raw", "train_acc", "wall_time", "run_id",
                 "message", "key")


def trial_table(sweep: Sweep, store: SweepStore) -> pd.DataFrame:
    """One row per trial: the sweep's axes, depth (of a convmixer/cnn model), init, seed, status
    ("pending" until stored), the final metrics, wall time, run id, message and key."""
    trials = sweep.trials()
    stored = store.finished(t.key for t in trials)
    rows = []
    for trial in trials:
        found = stored.get(trial.key)
        final = found["final"] if found else {}
        row = dict(zip(sweep.axes, trial.cell))
        row["depth"] = parse_spec(trial.config.model)["depth"]
        row.update(init=trial.init, seed=trial.seed, status=found["status"] if found else "pending",
                   test_acc=final.get("test_acc"), test_acc_raw=final.get("test_acc_raw"),
                   train_acc=final.get("train_acc"), wall_time=found["wall_time"] if found else None,
                   run_id=found["run_id"] if found else None, message=found["message"] if found else "",
                   key=trial.key)
        rows.append(row)
    return pd.DataFrame(rows, columns=[*sweep.axes, "depth", *TRIAL_COLUMNS])


def cell_effects(sweep: Sweep, table: pd.DataFrame, metric: str = "test_acc",
                 effect: float | None = None) -> pd.DataFrame:
    """Per cell and scheme other than the reference: n paired seeds, both means, the mean paired
    difference (scheme - reference, in points of `metric`) with its 95% interval and std, winner
    (the scheme, the reference or None) and seeds_needed: the seeds that resolve `effect` (default:
    the observed difference) at the observed spread (stats.seeds_needed; None when not estimable)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    axes, rows = list(sweep.axes), []
    groups = table.groupby(axes, sort=False, dropna=False) if axes else [((), table)]
    for cell, cell_rows in groups:
        cell = cell if isinstance(cell, tuple) else (cell,)
        by_seed = {init: dict(zip(part["seed"], part[metric])) for init, part in cell_rows.groupby("init")}
        reference = by_seed.get(sweep.reference, {})
        for scheme in sweep.inits[1:]:
            values = by_seed.get(scheme, {})
            seeds = [s for s in sweep.seeds if _finite(values.get(s)) and _finite(reference.get(s))]
            verdict = stats.paired_verdict([values[s] for s in seeds], [reference[s] for s in seeds])
            winner = {"a": scheme, "b": sweep.reference}.get(verdict.winner)
            target = effect if effect is not None else verdict.mean
            rows.append({**dict(zip(axes, cell)), "scheme": scheme, "reference": sweep.reference, "n": verdict.n,
                         "mean": _mean(values, seeds), "reference_mean": _mean(reference, seeds),
                         "diff_mean": verdict.mean, "diff_low": verdict.low, "diff_high": verdict.high,
                         "diff_std": verdict.std, "winner": winner,
                         "seeds_needed": stats.seeds_needed(target, verdict.std) if target is not None else None})
    return pd.DataFrame(rows, columns=[*axes, "scheme", "reference", "n", "mean", "reference_mean", "diff_mean",
                                       "diff_low", "diff_high", "diff_std", "winner", "seeds_needed"])


def _finite(value) -> bool:
    return value is not None and pd.notna(value)


def _mean(values: dict, seeds: list) -> float | None:
    return sum(values[s] for s in seeds) / len(seeds) if seeds else None


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV (.csv) or JSON records (.json); the path written."""
    path = Path(path)
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".json":
        table.to_json(path, orient="records", indent=1)
    else:
        raise ValueError(f"write the table as .csv or .json, not {path.name!r}")
    return path
