"""The Sweeps page's presenter: a sweep from the page's choices, its size and time estimate, the Ray
executor or why there is none, the background job that runs a sweep (its SweepEvents turned into
the job manager's progress events) and how a reloaded page finds it again, and the tables the page
shows: the cells filling in, each cell's effect with a power note, a cell's per-seed runs. Every
count comes from the run store (sweep.trial_table), which is the truth about a sweep. No
streamlit here, so it can be tested without a page.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass

import pandas as pd

from convcov_core import models
from convcov_core import sweep as sweeps
from convcov_core.jobs import JobStatus
from convcov_core.sweep.ray_cluster import INSTALL_HINT
from convcov_core.sweep.run import trial_seconds
from convcov_core.text import duration, number
from convcov_core.train import ProgressEvent

from . import lab

#: How the page names the axes it builds (other axes of a CLI sweep keep their field names).
AXIS_TITLES = {"kernel_size": "kernel size", "model": "model", "epochs": "epochs", "freeze_filters": "filters"}
#: The filter modes the page offers, and the TrainConfig.freeze_filters value of each.
FILTER_MODES = {"trained": False, "frozen": True}
_JOB_LABEL = re.compile(r"Sweep ([\w.\-]+): ")


@dataclass(frozen=True)
class GridChoice:
    """The page's choices: lists become axes when they hold more than one value (as in `sweep
    run`); inits: the first is the reference; seeds 0 .. n_seeds - 1; max_steps None: whole epochs."""

    name: str
    dataset: str = "mnist5k"
    width: int = 64
    depths: tuple = (8,)
    kernel_sizes: tuple = (9, 15)
    epochs: tuple = (1,)
    filters: tuple = ("trained", "frozen")
    inits: tuple = ("default", "gaussian")
    n_seeds: int = 3
    patch_size: int = 2
    batch_size: int = 128
    max_steps: int | None = None


_NEEDED = {"depths": "depth", "kernel_sizes": "kernel size", "epochs": "number of epochs",
           "filters": "filter mode (trained or frozen)"}


def build_sweep(choice: GridChoice) -> sweeps.Sweep:
    """The validated sweep of these choices; ValueError naming the first thing wrong."""
    for field, what in _NEEDED.items():
        if not getattr(choice, field):
            raise ValueError(f"Pick at least one {what}.")
    if len(choice.inits) < 2:
        raise ValueError("Pick at least two init schemes: the first is the reference the others are paired with.")
    values = {"kernel_size": list(choice.kernel_sizes),
              "model": [models.convmixer_spec(choice.width, depth) for depth in choice.depths],
              "epochs": list(choice.epochs), "freeze_filters": [FILTER_MODES[f] for f in choice.filters]}
    base = lab.lab_training(dataset=choice.dataset, patch_size=choice.patch_size, batch_size=choice.batch_size,
                            max_steps=choice.max_steps, **{field: v[0] for field, v in values.items()})
    axes = {field: v for field, v in values.items() if len(v) > 1}
    return sweeps.Sweep(choice.name, base, axes, list(choice.inits), list(range(choice.n_seeds))).validate()


def next_name(taken) -> str:
    """The first of sweep-1, sweep-2, ... not in `taken`."""
    taken = set(taken)
    return next(f"sweep-{n}" for n in range(1, len(taken) + 2) if f"sweep-{n}" not in taken)


def name_conflict(store: sweeps.SweepStore, grid: sweeps.Sweep) -> str | None:
    """Why `grid` cannot be stored under its name (another grid has it), or None."""
    if grid.name not in {s.name for s in store.list()} or store.get(grid.name).to_dict() == grid.to_dict():
        return None
    return (f"A sweep called {grid.name!r} already exists with another grid: open it below to see or resume "
            "it, or choose another name.")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def size_text(grid: sweeps.Sweep, n_stored: int) -> str:
    """'8 trials: 2 cells × 2 schemes × 2 seeds (3 already in the run store)'."""
    stored = f" ({n_stored:,} already in the run store, shared with earlier sweeps)" if n_stored else ""
    return (f"{_plural(grid.n_trials, 'trial')}: {_plural(grid.n_cells, 'cell')} × "
            f"{_plural(len(grid.inits), 'scheme')} × {_plural(len(grid.seeds), 'seed')}{stored}")


def estimate_text(grid: sweeps.Sweep, executor, n_todo: int) -> str:
    """Time for the trials left on `executor`: a few timed steps on this machine (trial_seconds)."""
    if not n_todo:
        return "nothing left to run: every trial is in the run store"
    seconds = trial_seconds(grid, executor)
    return (f"about {duration(seconds * n_todo / executor.slots)} for {_plural(n_todo, 'trial')} "
            f"({duration(seconds)} each, {executor.slots} at once), plus some seconds while the workers start")


def connect_ray(address: str | None):
    """The RayExecutor at `address` (None: a Ray started on this machine); ValueError saying why
    there is none (Ray not installed, the cluster not answering)."""
    if importlib.util.find_spec("ray") is None:
        raise ValueError(f"Ray is not installed on this server: {INSTALL_HINT}, then restart the app.")
    try:
        return sweeps.make_executor("ray", ray_address=address)
    except sweeps.ClusterUnreachable as exc:
        raise ValueError(f"No Ray cluster to run on: {exc}") from None


# ---------------------------------------------------------------------------------------------
# The background job
# ---------------------------------------------------------------------------------------------


def job_label(grid: sweeps.Sweep, n_todo: int, executor) -> str:
    return f"Sweep {grid.name}: {_plural(n_todo, 'trial')} on the {executor.name} executor"


def running_sweep(jobs: list[JobStatus]) -> tuple[int, str] | None:
    """(job id, sweep name) of a sweep job running on the server, if there is one."""
    for status in jobs:
        match = _JOB_LABEL.match(status.label)
        if status.running and status.kind == "task" and match:
            return status.id, match[1]
    return None


def progress_event(event: sweeps.SweepEvent, grid: sweeps.Sweep) -> ProgressEvent:
    """A sweep event as the job manager's progress: run_index = trials finished, n_runs = trials,
    step of total_steps of the trial it is about ("step"), or a trial stored ("done")."""
    running = event.kind == "running"
    return ProgressEvent(kind="step" if running else "done", step=event.step if running else 0,
                         total_steps=event.total_steps if running else 1, epoch=0, loss=event.loss,
                         eta_s=event.eta_s, variant=f"{cell_text(grid, event.trial.cell)}, {event.trial.init}",
                         seed=event.trial.seed, status=event.kind, run_index=event.n_finished,
                         n_runs=event.n_total)


def sweep_job(grid: sweeps.Sweep, store: sweeps.SweepStore, executor):
    """The job's work, fn(callback) -> SweepOutcome: run_sweep with every event but "queued" passed
    on (progress_event); the sweep stops once the callback answers "stop" (Cancel)."""
    def work(callback):
        stop = []

        def on_event(event: sweeps.SweepEvent) -> None:
            if event.kind != "queued" and callback(progress_event(event, grid)) == "stop":
                stop.append(True)

        return sweeps.run_sweep(grid, store, executor, on_event, lambda: bool(stop))
    return work


def progress_line(status: JobStatus) -> str:
    """Under the progress bar: trials finished, the latest trial's news, time left."""
    event = status.last_event
    if event is None:
        return "Starting the worker processes…"
    if event.kind == "step":
        news = f"running {event.variant}, seed {event.seed}: step {event.step} of {event.total_steps}"
    else:
        news = f"{'failed' if event.status == 'failed' else 'finished'} {event.variant}, seed {event.seed}"
    eta = event.eta_s if event.eta_s is not None else status.eta_s
    left = f" · about {duration(eta)} left" if eta is not None else ""
    return f"{event.run_index} of {_plural(event.n_runs, 'trial')} finished · {news}{left}"


def outcome_text(outcome: sweeps.SweepOutcome) -> str:
    failed = f" ({outcome.failed} failed)" if outcome.failed else ""
    found = f"; {outcome.skipped} were in the run store already" if outcome.skipped else ""
    return (f"Sweep {outcome.name}: ran {_plural(outcome.ran, 'trial')}{failed} in "
            f"{duration(outcome.wall_time)}{found}.")


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def shown_value(axis: str, value):
    """An axis value as the page shows it (filters: trained / frozen)."""
    if axis == "freeze_filters":
        return "frozen" if value else "trained"
    return value


def readable(table: pd.DataFrame, grid: sweeps.Sweep) -> pd.DataFrame:
    """A copy of a trial or effect table with the axes' values as the page shows them."""
    out = table.copy()
    for axis in grid.axes:
        out[axis] = [shown_value(axis, v) for v in out[axis]]
    return out


def cell_text(grid: sweeps.Sweep, cell: tuple) -> str:
    """'kernel size 5, filters frozen' ('the only cell' for a sweep without axes)."""
    return ", ".join(f"{AXIS_TITLES.get(a, a)} {shown_value(a, v)}" for a, v in zip(grid.axes, cell)) or "the only cell"


def _in_cell(table: pd.DataFrame, grid: sweeps.Sweep, cell: tuple) -> pd.DataFrame:
    keep = pd.Series(True, index=table.index)
    for axis, value in zip(grid.axes, cell):
        keep &= table[axis] == value
    return table[keep]


def cell_counts(grid: sweeps.Sweep, table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the axes' values (as shown), n_total trials, n_finished stored, n_failed."""
    rows = []
    for cell in grid.cells():
        status = _in_cell(table, grid, cell)["status"]
        finished = status != "pending"
        rows.append({**{a: shown_value(a, v) for a, v in zip(grid.axes, cell)}, "n_total": len(status),
                     "n_finished": int(finished.sum()), "n_failed": int((finished & (status != "ok")).sum())})
    return pd.DataFrame(rows)


def power_note(row) -> str:
    """What the seeds say about a cell's effect: how many would resolve an effect of its size."""
    if row["n"] < 2:
        return "needs 2 paired seeds for an interval"
    if row["diff_mean"] == 0:
        return "no difference to resolve"
    needed = row["seeds_needed"]
    if needed is None or not math.isfinite(needed):
        return "over 1,000 seeds would be needed to resolve an effect this small at this spread"
    return f"{int(needed)} seeds would resolve an effect of this size at this spread"


def _num(value, spec: str = ".2f") -> str:
    """text.number, with NaN (a missing value in a float column) shown as missing too."""
    return number(value if pd.notna(value) else None, spec)


def _interval(row) -> str:
    return f"{_num(row['diff_low'], '+.2f')} to {_num(row['diff_high'], '+.2f')}" if pd.notna(row["diff_low"]) else "-"


def effect_rows(effects: pd.DataFrame, grid: sweeps.Sweep) -> pd.DataFrame:
    """The effects table as the page shows it: cell, scheme, seeds, both means, the difference
    with its 95% interval, the winner and the seeds that would resolve the difference."""
    rows = []
    for _, r in readable(effects, grid).iterrows():
        rows.append({**{AXIS_TITLES.get(a, a): r[a] for a in grid.axes}, "scheme": r["scheme"], "seeds": r["n"],
                     "mean %": _num(r["mean"]), f"{grid.reference} %": _num(r["reference_mean"]),
                     "difference": _num(r["diff_mean"], "+.2f"), "95% interval": _interval(r),
                     "winner": r["winner"] if isinstance(r["winner"], str) else "none",
                     "seeds to resolve": _num(r["seeds_needed"], ".0f")})
    return pd.DataFrame(rows)


def cell_notes(effects: pd.DataFrame, grid: sweeps.Sweep, cell: tuple) -> list[str]:
    """Per scheme of a cell: its difference against the reference with the interval, and the power note."""
    return [f"**{r['scheme']} − {grid.reference}:** {_num(r['diff_mean'], '+.2f')} points (95% interval "
            f"{_interval(r)}, {_plural(int(r['n']), 'paired seed')}); {power_note(r)}."
            for _, r in _in_cell(effects, grid, cell).iterrows()]


def seed_table(grid: sweeps.Sweep, table: pd.DataFrame, cell: tuple) -> pd.DataFrame:
    """A cell's trials: one row per seed, the test accuracy (%) of each scheme and each scheme's
    difference against the reference (points)."""
    trials = _in_cell(table, grid, cell)
    accuracy = trials.pivot(index="seed", columns="init", values="test_acc").reindex(columns=grid.inits)
    out = pd.DataFrame({"seed": accuracy.index})
    for init in grid.inits:
        out[f"{init} %"] = accuracy[init].to_numpy(dtype=float)
    for init in grid.inits[1:]:
        out[f"{init} − {grid.reference}"] = out[f"{init} %"] - out[f"{grid.reference} %"]
    return out


def cell_run_ids(grid: sweeps.Sweep, table: pd.DataFrame, cell: tuple) -> list[int]:
    """The stored runs of a cell's trials (schemes in order, then seeds)."""
    trials = _in_cell(table, grid, cell).dropna(subset=["run_id"])
    order = {init: n for n, init in enumerate(grid.inits)}
    trials = trials.sort_values(["init", "seed"], key=lambda col: col.map(order) if col.name == "init" else col)
    return [int(run_id) for run_id in trials["run_id"]]


def setup_text(grid: sweeps.Sweep) -> str:
    """What the sweep varies, then what its trials share, the schemes and the seeds."""
    base = grid.base
    shared = {"kernel_size": f"k = {base.kernel_size}", "patch_size": f"patch {base.patch_size}",
              "epochs": _plural(base.epochs, "epoch"), "batch_size": f"batch {base.batch_size}",
              "lr": f"lr {base.lr:g}",
              "freeze_filters": f"filters {shown_value('freeze_filters', base.freeze_filters)}",
              "max_steps": f"at most {base.max_steps} steps" if base.max_steps else ""}
    network = (base.model if "model" not in grid.axes else "") + (
        f" on {base.dataset}" if "dataset" not in grid.axes else "")
    same = ", ".join(text for field, text in [("", network.strip()), *shared.items()]
                     if text and field not in grid.axes)
    varied = "; ".join(f"{AXIS_TITLES.get(a, a)} {', '.join(str(shown_value(a, v)) for v in values)}"
                       for a, values in grid.axes.items())
    return (f"{'Varies ' + varied + '. ' if varied else ''}Every trial: {same}. Schemes: "
            f"{', '.join(grid.inits[1:])} against {grid.reference}; {_seeds_text(grid.seeds)}.")


def _seeds_text(seeds: list) -> str:
    """'seeds 0-9', 'seeds 0, 1', 'seed 3'."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return f"seeds {', '.join(map(str, seeds))}"


def sweep_label(summary: sweeps.SweepSummary) -> str:
    """How the list of stored sweeps names one: 'sweep-1: 6 of 8 trials finished (1 failed), 2024-05-01 10:00 UTC'."""
    failed = f" ({summary.n_failed} failed)" if summary.n_failed else ""
    return (f"{summary.name}: {summary.n_finished} of {_plural(summary.n_trials, 'trial')} finished{failed}, "
            f"{summary.created[:16].replace('T', ' ')} UTC")


# ---------------------------------------------------------------------------------------------
# Figure axes
# ---------------------------------------------------------------------------------------------

_PREFERRED = ("kernel_size", "model", "epochs", "freeze_filters")


def figure_axes(grid: sweeps.Sweep) -> dict:
    """Default axes of the figures: heatmap columns x and rows y; lines against `against`, one
    line per `lines`, panels per `panels` (None where the sweep has too few axes)."""
    axes = sorted(grid.axes, key=lambda a: _PREFERRED.index(a) if a in _PREFERRED else len(_PREFERRED))
    padded = axes + [None] * 3
    lines = next((a for a in axes[1:] if a != "freeze_filters"), None)
    panels = "freeze_filters" if "freeze_filters" in axes[1:] else next((a for a in axes[1:] if a != lines), None)
    return {"x": padded[0], "y": padded[1], "against": padded[0], "lines": lines, "panels": panels}


def fixed_axes(grid: sweeps.Sweep, used) -> list[str]:
    """The sweep's axes a figure does not draw (each is fixed to one value)."""
    return [a for a in grid.axes if a not in used]


def slice_rows(effects: pd.DataFrame, scheme: str, fixed: dict) -> pd.DataFrame:
    """The effects of one scheme with the fixed axes at their chosen values."""
    keep = effects["scheme"] == scheme
    for axis, value in fixed.items():
        keep &= effects[axis] == value
    return effects[keep]
