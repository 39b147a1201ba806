"""The regime map: where, if anywhere, does the Gaussian init help? One base setting and, around it,
one sweep per regime axis (patch size, so the map is larger or smaller than the filter; width; the
σ schedule; training length; data), each cell Gaussian vs default init over the same seeds.

The sweeps share the base cell (its trials have the same keys, so it trains once), resume where they
stood, and keep every trial in the run store. regime_report reads them back: per cell its regime
(regime.regime_of), the paired effect and interval (sweep.cell_effects), a one-sided p-value of
"Gaussian helps", Holm's correction over every cell of the map (stats.holm), and the smallest gain
the cell could have seen (80% power at its measured spread: stats.detectable_effect).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import learned_sets, models, stats
from ..regime import regime_of
from ..sweep import Executor, Sweep, SweepStore, cell_effects, pending_seconds, run_sweep, trial_table
from ..train import TrainConfig
from .suites import FULL_SEEDS

INITS = ["default", "gaussian"]


@dataclass
class RegimeMap:
    """A base config and named one-axis sweeps around it ({label: Sweep}); seeds by `seed_rule`."""

    name: str
    base: TrainConfig
    sweeps: dict
    seeds: list
    seed_rule: str

    @property
    def n_trials(self) -> int:
        return len({t.key for grid in self.sweeps.values() for t in grid.trials()})


def _named(name: str, base: TrainConfig, axes: dict, seeds: list) -> Sweep:
    spec = json.dumps([base.canonical_dict(), axes, seeds, INITS], sort_keys=True, default=str)
    return Sweep(f"regimes-{name}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}", base, axes, list(INITS), seeds)


def _around(label: str, base: TrainConfig, axes_by_sweep: dict, seeds: list) -> dict:
    return {name: _named(f"{label}-{name}", base, axes, seeds) for name, axes in axes_by_sweep.items()}


def cpu_map(device: str = "auto") -> RegimeMap:
    """About an hour on 2 CPU cores: ConvMixer-64/8, 9 x 9 filters, patch 2 (14 x 14 maps), mnist5k,
    1 epoch; around it patch 1/2/4 (28, 14, 7-pixel maps), width 32/64/128/256, σ schedules
    (σ_first 0.5 or 1 x σ_last 2 or 3, and the bundled example's fitted one, 0.70 -> 1.18 at k = 9:
    learned_sets.example_sigmas), 1/3/10
    epochs, digits or natural-image crops (textures); seeds by FULL_SEEDS (a 1-point gain)."""
    seeds = list(range(FULL_SEEDS.count()))
    fitted = learned_sets.example_sigmas(9)
    base = TrainConfig(dataset="mnist5k", model="convmixer-64/8", kernel_size=9, patch_size=2, epochs=1,
                       batch_size=128, lr=0.01, sigma_first=1.0, sigma_last=3.0, threads=1, device=device)
    axes = {"patch": {"patch_size": [1, 2, 4]},
            "width": {"model": [models.convmixer_spec(w, 8) for w in (32, 64, 128, 256)]},
            "sigma": {"sigma_first": [0.5, 1.0], "sigma_last": [2.0, 3.0]},
            "fitted-sigma": {"sigma_first": [fitted[0]], "sigma_last": [fitted[1]]},
            "epochs": {"epochs": [1, 3, 10]},
            "data": {"dataset": ["mnist5k", "textures"]}}
    return RegimeMap("cpu", base, _around("cpu", base, axes, seeds), seeds, FULL_SEEDS.statement())


def tiny_map(device: str = "auto") -> RegimeMap:
    """Seconds, for tests: the same axes at two steps a run on a few dozen noisy-bars images."""
    seeds = [0, 1]
    base = TrainConfig(dataset="noisy-bars", dataset_params={"n_train": 64, "n_test": 32, "image_size": 12,
                                                             "bar_size": 5},
                       model="convmixer-8/2", kernel_size=5, patch_size=2, epochs=1, batch_size=32, max_steps=2,
                       sigma_first=1.0, sigma_last=2.0, threads=1, device=device)
    axes = {"patch": {"patch_size": [1, 2, 4]}, "width": {"model": ["convmixer-4/2", "convmixer-8/2"]},
            "sigma": {"sigma_first": [0.5, 1.0]}}
    return RegimeMap("tiny", base, _around("tiny", base, axes, seeds), seeds, "2 seeds (fixed; a smoke test)")


MAPS = {"tiny": tiny_map, "cpu": cpu_map}


def build_map(name: str, device: str = "auto") -> RegimeMap:
    if name not in MAPS:
        raise ValueError(f"unknown regime map {name!r}; choose one of: {', '.join(MAPS)}")
    regime_map = MAPS[name](device)
    for grid in regime_map.sweeps.values():
        grid.validate()
    return regime_map


def run_regime_map(regime_map: RegimeMap, store: SweepStore, executor: Executor, on_event=None,
                   should_stop=None) -> bool:
    """Run every sweep of the map not yet stored (resumable); False when stopped before the end."""
    for grid in regime_map.sweeps.values():
        outcome = run_sweep(grid, store, executor, on_event, should_stop)
        if outcome.cancelled:
            return False
    return True


def estimate_seconds(regime_map: RegimeMap, store: SweepStore, executor: Executor) -> tuple[float, int]:
    """(seconds run_regime_map should take on `executor`, the distinct trials left): sweep.pending_seconds
    over the map's sweeps (a few timed steps of two trials of each sweep that has trials left)."""
    return pending_seconds(list(regime_map.sweeps.values()), executor, store)


def regime_table(regime_map: RegimeMap, store: SweepStore) -> pd.DataFrame:
    """One row per distinct cell of the map: the sweep and setting that define it, its regime, the
    paired Gaussian - default effect with its interval, p (one-sided, "Gaussian helps"), Holm's
    verdict over all cells (helps_holm), the smallest gain it could see with 80% power
    (detectable) and the cell's mean trial time."""
    rows, seen = [], set()
    for label, grid in regime_map.sweeps.items():
        table = trial_table(grid, store)
        effects = cell_effects(grid, table)
        for _, effect in effects.iterrows():
            cell = tuple(effect[a] for a in grid.axes)
            config = grid.base.replace(**dict(zip(grid.axes, cell)))
            key = json.dumps(config.canonical_dict(), sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            in_cell = table
            for axis, value in zip(grid.axes, cell):
                in_cell = in_cell[in_cell[axis] == value]
            gains = _gains(in_cell)
            iv = stats.mean_interval(gains)
            regime = regime_of(config)
            setting = ", ".join(f"{a} {v}" for a, v in zip(grid.axes, cell))
            rows.append({"sweep": label, "setting": setting, "regime": regime.describe(),
                         "wider_than_map": regime.wider_than_map, "steps": regime.steps, "n": iv.n,
                         "mean": iv.mean, "low": iv.low, "high": iv.high, "std": iv.std,
                         "p_helps": iv.p_above(0.0), "detectable": stats.detectable_effect(iv.std, iv.n),
                         "default_acc": _mean(in_cell, "default"), "gaussian_acc": _mean(in_cell, "gaussian"),
                         "trial_s": float(in_cell["wall_time"].mean()) if in_cell["wall_time"].notna().any() else None})
    out = pd.DataFrame(rows)
    if len(out):
        out["helps_holm"] = stats.holm(out["p_helps"].tolist())
    return out


def _gains(cell: pd.DataFrame) -> list[float]:
    ok = cell[cell["status"] == "ok"].pivot_table(index="seed", columns="init", values="test_acc", aggfunc="first")
    if not set(INITS) <= set(ok.columns):
        return []
    return (ok["gaussian"] - ok["default"]).dropna().tolist()


def _mean(cell: pd.DataFrame, init: str) -> float | None:
    values = cell[(cell["init"] == init) & (cell["status"] == "ok")]["test_acc"].dropna()
    return float(values.mean()) if len(values) else None


def _signed(value, spec: str = "+.2f") -> str:
    return "-" if value is None or pd.isna(value) else format(value, spec)


def map_summary(table: pd.DataFrame) -> str:
    """Where the Gaussian init helps on this map, in one paragraph: the cells whose gain survives
    Holm's correction over all cells, else the largest gain seen and the smallest the map could see."""
    if table.empty:
        return "No cell of the map has finished pairs yet."
    done = table[table["n"] >= 2]
    helps = done[done["helps_holm"]]
    worse = done[done["high"] < 0]
    lines = []
    if len(helps):
        lines.append("The Gaussian init helps (one-sided paired t-test, Holm over the map's "
                     f"{len(done)} cells) in: " + "; ".join(
                         f"{r.setting} ({r.regime}): {_signed(r['mean'])} [{_signed(r.low)}, {_signed(r.high)}]"
                         for _, r in helps.iterrows()) + ".")
    else:
        best = done.loc[done["mean"].idxmax()] if len(done) else None
        detect = done["detectable"].dropna()
        lines.append(f"In none of the map's {len(done)} cells does the Gaussian init help after Holm's correction."
                     + (f" The largest mean gain was {_signed(best['mean'])} [{_signed(best.low)}, "
                        f"{_signed(best.high)}] points ({best.setting}; {best.regime})." if best is not None else "")
                     + (f" With its seeds and spreads the map would have seen (80% power) a gain of "
                        f"{detect.min():.2f} points in its most precise cell and {detect.median():.2f} in the "
                        "median cell; smaller gains may exist." if len(detect) else ""))
    if len(worse):
        lines.append(f"The default init is ahead (interval wholly below 0, uncorrected) in {len(worse)} cell(s): "
                     + "; ".join(f"{r.setting}: {_signed(r['mean'])} [{_signed(r.low)}, {_signed(r.high)}]"
                                 for _, r in worse.iterrows()) + ".")
    wide = done[done["wider_than_map"]]
    if len(wide):
        lines.append(f"{len(wide)} cell(s) have filters wider than their feature maps (marked 'k > map').")
    return " ".join(lines)


def report_markdown(regime_map: RegimeMap, table: pd.DataFrame, wall_note: str = "") -> str:
    """The map's report: what was run, the summary, one table row per cell."""
    base = regime_of(regime_map.base)
    head = [f"# Regime map `{regime_map.name}`: Gaussian vs default init, cell by cell", "",
            f"Base cell: {base.describe()}; σ schedule {regime_map.base.sigma_first:g} -> "
            f"{regime_map.base.sigma_last:g}; AdamW lr {regime_map.base.lr:g} one-cycle, batch "
            f"{regime_map.base.batch_size}; BatchNorm statistics recomputed before every evaluation. Around it one "
            "sweep per axis (" + ", ".join(f"{label}: " + "; ".join(f"{a} {v}" for a, v in grid.axes.items())
                                          for label, grid in regime_map.sweeps.items()) + ").",
            f"Seeds: {regime_map.seed_rule}.", "",
            "Per cell: gain = Gaussian - default test accuracy (points), paired by seed, its 95% t interval; "
            "p = one-sided p-value of 'the Gaussian init helps'; 'helps (Holm)' = that test survives Holm's "
            "correction over every cell of the map (family-wise 2.5%); 'sees' = the smallest true gain the cell "
            "resolves with 80% power at its measured spread. 'k > map' marks filters wider than their maps.", ""]
    if wall_note:
        head += [wall_note, ""]
    head += ["## Summary", "", map_summary(table), "", "## Cells", "",
             "| sweep | setting | regime | default % | gaussian % | gain | 95% interval | p | helps (Holm) | sees | "
             "seeds | s/trial |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        regime = r.regime + (" **k > map**" if r.wider_than_map else "")
        head.append(f"| {r.sweep} | {r.setting} | {regime} | {_signed(r.default_acc, '.2f')} | "
                    f"{_signed(r.gaussian_acc, '.2f')} | {_signed(r['mean'])} | "
                    f"[{_signed(r.low)}, {_signed(r.high)}] | "
                    f"{_signed(r.p_helps, '.3f')} | {'yes' if r.get('helps_holm') else 'no'} | "
                    f"{_signed(r.detectable, '.2f')} | {int(r.n)} | {_signed(r.trial_s, '.1f')} |")
    return "\n".join(head) + "\n"


def write_report(regime_map: RegimeMap, table: pd.DataFrame, folder, wall_note: str = "") -> Path:
    """report.md, cells.csv and report.json (the map's sweeps, its cells, the summary) in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(report_markdown(regime_map, table, wall_note))
    table.to_csv(folder / "cells.csv", index=False)
    spec = {"name": regime_map.name, "base": regime_map.base.to_dict(), "seeds": regime_map.seeds,
            "seed_rule": regime_map.seed_rule, "sweeps": {k: g.to_dict() for k, g in regime_map.sweeps.items()},
            "summary": map_summary(table), "note": wall_note,
            "cells": json.loads(table.to_json(orient="records"))}
    (folder / "report.json").write_text(json.dumps(spec, indent=1))
    return folder
