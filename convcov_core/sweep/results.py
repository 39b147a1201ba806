"""A sweep's results: the tidy trial table (one row per trial) and the effect of every scheme
against the reference in every cell of the grid, paired over seeds by the one verdict rule
(stats.paired_verdict), with the seeds a cell would need to resolve its effect (stats.seeds_needed)
and the feature map its depthwise filters see (cell_maps: regime.regime_of of the cell's config),
so a cell whose k x k filters are wider than their map is marked as such.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .. import stats
from ..compare import METRICS
from ..models import parse_spec
from ..regime import regime_of
from ..train import TrainConfig
from .grid import Sweep
from .store import SweepStore

#: What a cell marked wider_than_map (k > map) means, in the words every table and figure uses.
WIDER_THAN_MAP_NOTE = ("k > map: the k x k filters are wider than the n x n feature map they see, so their weights "
                       "beyond the map only ever meet padding and each filter sees the whole map from every position")
#: The TrainConfig fields that decide a cell's filters and maps (its regime's kernel and map side).
_MAP_FIELDS = ("dataset", "dataset_params", "data_root", "model", "kernel_size", "patch_size")
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
    (the scheme, the reference or None), seeds_needed: the seeds that resolve `effect` (default:
    the observed difference) at the observed spread (stats.seeds_needed; None when not estimable),
    and the cell's map_side and wider_than_map (cell_maps; map_side empty where it is unknown)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    axes, rows = list(sweep.axes), []
    maps = cell_maps(sweep)
    groups = table.groupby(axes, sort=False, dropna=False) if axes else [((), table)]
    for cell, cell_rows in groups:
        cell = cell if isinstance(cell, tuple) else (cell,)
        by_seed = {init: dict(zip(part["seed"], part[metric])) for init, part in cell_rows.groupby("init")}
        reference = by_seed.get(sweep.reference, {})
        map_side, wider = maps[cell] if cell in maps else _cell_map(sweep, cell)
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
                         "seeds_needed": stats.seeds_needed(target, verdict.std) if target is not None else None,
                         "map_side": map_side, "wider_than_map": wider})
    out = pd.DataFrame(rows, columns=[*axes, "scheme", "reference", "n", "mean", "reference_mean", "diff_mean",
                                      "diff_low", "diff_high", "diff_std", "winner", "seeds_needed", "map_side",
                                      "wider_than_map"])
    return out.astype({"map_side": "Int64", "wider_than_map": bool})


def cell_maps(sweep: Sweep) -> dict[tuple, tuple[int | None, bool]]:
    """Per cell (a tuple of axis values, as Sweep.cells gives them): (map_side, wider_than_map) of
    regime.regime_of(the cell's config), i.e. the side of the smallest feature map its depthwise
    filters see and whether k > that side; (None, False) where it cannot be told (data not on this
    machine, a model that does not take the images, no square depthwise filters). One regime_of per
    distinct model, kernel, patch and data (the same ones are remembered for the process), cells of
    one dataset together (train.load_training_data keeps the last dataset loaded)."""
    cells = sweep.cells()
    order = sorted(cells, key=lambda cell: str(_cell_config(sweep, cell).dataset))
    found = {cell: _cell_map(sweep, cell) for cell in order}
    return {cell: found[cell] for cell in cells}


def _plain(value):
    """An axis value read back from a table as the Python value the config takes (numpy scalars
    unwrapped, NaN - a None in a numeric column - back to None)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value


def _cell_config(sweep: Sweep, cell: tuple) -> TrainConfig:
    return sweep.base.replace(**{axis: _plain(value) for axis, value in zip(sweep.axes, cell)})


def _cell_map(sweep: Sweep, cell: tuple) -> tuple[int | None, bool]:
    config = _cell_config(sweep, cell)
    return _map_of(json.dumps({f: getattr(config, f) for f in _MAP_FIELDS}, sort_keys=True))


@lru_cache(maxsize=1024)
def _map_of(fields: str) -> tuple[int | None, bool]:
    try:
        regime = regime_of(TrainConfig(**json.loads(fields)))
    except (ValueError, RuntimeError, OSError, ImportError):
        return None, False
    return regime.map_side, regime.wider_than_map


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
