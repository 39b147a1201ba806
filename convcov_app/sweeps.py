"""The Sweeps page's presenter: the grid's widgets (their options and first values), a sweep from
the page's choices (datasets, widths, depths, kernel and patch sizes, epochs, filters, the σ
schedule: convcov's default, the one fitted from the bundled example, or σ values as axes), its
size and time estimate, the cells whose filters are wider than their feature map, the Ray
cluster (probed, never connected to from the server) or why there is none, the background job
that runs a sweep (its SweepEvents turned into the job manager's progress events) and how a
reloaded page finds it again, and the tables the page shows: the cells filling in, each cell's
effect with a power note, a cell's per-seed runs. Every count comes from the run store
(sweep.trial_table), which is the truth about a sweep. No streamlit here, so it can be tested
without a page.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass

import pandas as pd

from convcov_core import examples, learned_sets, models, throughput, work
from convcov_core import sweep as sweeps
from convcov_core.init import scheme_names, using_sigma
from convcov_core.jobs import Interrupted, JobStatus
from convcov_core.sweep.ray_cluster import INSTALL_HINT
from convcov_core.sweep.ray_job import DriverLost, RaySpec, probe, run_sweep_apart
from convcov_core.sweep.results import WIDER_THAN_MAP_NOTE, cell_maps
from convcov_core.sweep.run import trial_seconds
from convcov_core.text import duration, number
from convcov_core.train import ProgressEvent

from . import caps, lab, labels

#: How the page names the axes it builds (other axes of a CLI sweep keep their field names).
AXIS_TITLES = {"kernel_size": "kernel size", "model": "model", "epochs": "epochs", "freeze_filters": "filters",
               "patch_size": "patch size", "dataset": "dataset", "sigma_first": "σ first", "sigma_last": "σ last"}
#: The filter modes the page offers, and the TrainConfig.freeze_filters value of each.
FILTER_MODES = {"trained": False, "frozen": True}
#: The options of the grid's lists.
WIDTHS = (8, 16, 32, 64, 128, 256)
EPOCHS = (1, 2, 3, 5, 10, 15, 20, 30)
PATCH_SIZES = tuple(range(1, 17))
BATCH_SIZES = (16, 32, 64, 128, 256)
#: The σ schedules of the σ schemes (Scheme.uses_sigma) the page offers, as it names them.
SCHEDULES = {"default": "convcov default: 1 → max(1, k/3)", "fitted": "fitted from the bundled example",
             "custom": "custom σ values"}
SCHEDULE_BY_LABEL = {label: key for key, label in SCHEDULES.items()}
_JOB_LABEL = re.compile(r"Sweep ([\w.\-]+): ")


@dataclass(frozen=True)
class GridChoice:
    """The page's choices: lists become axes when they hold more than one value (as in `sweep
    run`); the model axis is ConvMixer-width/depth for every width and depth; inits: the first is
    the reference; schedule: a key of SCHEDULES (custom: sigma_firsts and sigma_lasts, an empty
    one keeping convcov's default for that end); seeds 0 .. n_seeds - 1; max_steps None: whole epochs."""

    name: str
    datasets: tuple = ("mnist5k",)
    widths: tuple = (64,)
    depths: tuple = (8,)
    kernel_sizes: tuple = (9, 15)
    patch_sizes: tuple = (2,)
    epochs: tuple = (1,)
    filters: tuple = ("trained", "frozen")
    inits: tuple = ("default", "gaussian")
    schedule: str = "default"
    sigma_firsts: tuple = ()
    sigma_lasts: tuple = ()
    n_seeds: int = 3
    batch_size: int = 128
    max_steps: int | None = None


#: The grid's lists on the page, in order: (GridChoice field, widget key, label, help).
_LISTS = (("datasets", "sweep_datasets", "Datasets", "The embedded ones (mnist5k digits, textures: natural-image "
           "crops) and those downloaded."),
          ("kernel_sizes", "sweep_kernels", "Kernel sizes", None),
          ("widths", "sweep_widths", "ConvMixer widths (channels)", "Each width with each depth is a model."),
          ("depths", "sweep_depths", "Depths (blocks)", None),
          ("patch_sizes", "sweep_patches", "Patch sizes", "The stem's stride: a 28 x 28 digit with patch 2 gives "
           "14 x 14 feature maps."),
          ("epochs", "sweep_epochs", "Epochs", None),
          ("filters", "sweep_filters", "Depthwise filters", "frozen: the filters keep their init, so the init alone "
           "decides their structure."))


def grid_lists(datasets: list, max_kernel: int) -> list[tuple]:
    """The page's multiselects of the grid: (field, widget key, label, options, help) each."""
    options = {"datasets": list(datasets), "kernel_sizes": list(range(3, max_kernel + 1, 2)), "widths": list(WIDTHS),
               "depths": list(range(1, 17)), "patch_sizes": list(PATCH_SIZES), "epochs": list(EPOCHS),
               "filters": list(FILTER_MODES)}
    return [(field, key, label, options[field], help) for field, key, label, help in _LISTS]


def widget_values(choice: GridChoice) -> dict:
    """The grid widgets' values (by widget key) that show `choice`."""
    values = {key: list(getattr(choice, field)) for field, key, *_ in _LISTS}
    return {**values, "sweep_name": choice.name, "sweep_schedule": SCHEDULES[choice.schedule],
            "sweep_sigma_first": list(choice.sigma_firsts), "sweep_sigma_last": list(choice.sigma_lasts),
            "sweep_inits": [labels.scheme_label(n) for n in choice.inits], "sweep_seeds": choice.n_seeds,
            "sweep_max_steps": choice.max_steps or 0, "sweep_batch": choice.batch_size}


def scheme_by_label() -> dict[str, str]:
    """{label: name} of the schemes a sweep can race: the filter schemes that need no learned covariances."""
    return {labels.scheme_label(name): name for name in scheme_names("depthwise", with_source=False)}


def choice_from(name: str, values: dict) -> GridChoice:
    """The GridChoice of the widgets' values (GridChoice fields; inits and schedule by their labels,
    max_steps 0 for whole epochs): lists sorted (filters and inits in their own order)."""
    lists = {field: tuple(sorted(values[field])) for field, *_ in _LISTS if field not in ("datasets", "filters")}
    return GridChoice(name=name.strip(), **lists, datasets=tuple(values["datasets"]),
                      filters=tuple(f for f in FILTER_MODES if f in values["filters"]),
                      inits=tuple(scheme_by_label()[label] for label in values["inits"]),
                      schedule=SCHEDULE_BY_LABEL[values["schedule"]],
                      sigma_firsts=tuple(sorted(values.get("sigma_firsts", ()))),
                      sigma_lasts=tuple(sorted(values.get("sigma_lasts", ()))), n_seeds=int(values["n_seeds"]),
                      batch_size=values["batch_size"], max_steps=int(values["max_steps"]) or None)


_NEEDED = {"datasets": "dataset", "widths": "width", "depths": "depth", "kernel_sizes": "kernel size",
           "patch_sizes": "patch size", "epochs": "number of epochs", "filters": "filter mode (trained or frozen)"}


def build_sweep(choice: GridChoice) -> sweeps.Sweep:
    """The validated sweep of these choices; ValueError naming the first thing wrong."""
    for field, what in _NEEDED.items():
        if not getattr(choice, field):
            raise ValueError(f"Pick at least one {what}.")
    if len(choice.inits) < 2:
        raise ValueError("Pick at least two init schemes: the first is the reference the others are paired with.")
    firsts, lasts = sigma_values(choice)
    values = {"kernel_size": list(choice.kernel_sizes),
              "model": [models.convmixer_spec(width, depth) for width in choice.widths for depth in choice.depths],
              "patch_size": list(choice.patch_sizes), "epochs": list(choice.epochs),
              "freeze_filters": [FILTER_MODES[f] for f in choice.filters], "dataset": list(choice.datasets),
              "sigma_first": firsts, "sigma_last": lasts}
    base = lab.lab_training(batch_size=choice.batch_size, max_steps=choice.max_steps,
                            **{field: v[0] for field, v in values.items()})
    axes = {field: v for field, v in values.items() if len(v) > 1}
    return sweeps.Sweep(choice.name, base, axes, list(choice.inits), list(range(choice.n_seeds))).validate()


# ---------------------------------------------------------------------------------------------
# The σ schedule
# ---------------------------------------------------------------------------------------------


def sigma_values(choice: GridChoice) -> tuple[list, list]:
    """The sigma_first and sigma_last values of the choice's schedule (None: convcov's default,
    init.default_sigmas of each cell's k); the fitted one is rescaled to the first kernel size."""
    if choice.schedule == "default":
        return [None], [None]
    if choice.schedule == "fitted":
        first, last = learned_sets.example_sigmas(choice.kernel_sizes[0]) if choice.kernel_sizes else (None, None)
        return [first], [last]
    if choice.schedule != "custom":
        raise ValueError(f"unknown σ schedule {choice.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    return list(choice.sigma_firsts) or [None], list(choice.sigma_lasts) or [None]


def schedule_caption(choice: GridChoice) -> str:
    """What the chosen σ schedule gives each cell, and which schemes it changes."""
    users = using_sigma(choice.inits)
    if not users:
        repeat = ", and σ axes only repeat the same trials" if choice.schedule == "custom" else ""
        return (f"None of the chosen schemes uses σ (only {', '.join(using_sigma(scheme_by_label().values()))} "
                f"do): the schedule changes no trial's filters{repeat}.")
    who = f"Only the σ schemes use σ ({', '.join(users)} here)"
    if choice.schedule == "default":
        return f"{who}: σ grows over the depth from 1 to max(1, k/3), following each cell's kernel size."
    if choice.schedule == "custom":
        return (f"{who}: a list of several values is an axis; an empty list keeps the default for that end (1 "
                "first, max(1, k/3) last). The other schemes' trials (the reference's too) repeat the same "
                "training in every σ cell.")
    first, last, k_example = learned_sets.example_schedule()
    shown = f"σ {first:.2f} → {last:.2f} px at k = {k_example}"
    if not choice.kernel_sizes:
        return f"{who}: {shown}."
    k = choice.kernel_sizes[0]
    scaled = learned_sets.example_sigmas(k)
    several = " (the first kernel size picked), in every cell" if len(choice.kernel_sizes) > 1 else ""
    example = f"{examples.EXAMPLE_CONFIG.model} on {examples.EXAMPLE_CONFIG.dataset}"
    return (f"{who}: the least-squares line through the bundled example's fitted σ per layer ({example}), "
            f"{shown}, rescaled by (k − 1)/{k_example - 1} as learned covariances are to another k: "
            f"σ {scaled[0]:.2f} → {scaled[1]:.2f} px at k = {k}{several}.")


# ---------------------------------------------------------------------------------------------
# Filters wider than their feature map
# ---------------------------------------------------------------------------------------------

#: Most cells whose feature maps the page works out before a sweep runs.
MAP_NOTE_CELLS = 400


def map_note(grid: sweeps.Sweep) -> str | None:
    """Before a sweep runs: which of its cells have filters wider than their feature map (k > map),
    or None (none do, or the grid has more than MAP_NOTE_CELLS cells)."""
    if grid.n_cells > MAP_NOTE_CELLS:
        return None
    maps = cell_maps(grid)
    wide = [cell for cell, (_, wider) in maps.items() if wider]
    if not wide:
        return None
    sides = sorted({maps[cell][0] for cell in wide})
    named = "; ".join(cell_text(grid, cell) for cell in wide[:3]) + ("; …" if len(wide) > 3 else "")
    return (f"**{len(wide)} of {_plural(grid.n_cells, 'cell')} marked k > map** ({named}: maps of "
            f"{', '.join(f'{n} x {n}' for n in sides)}). {WIDER_THAN_MAP_NOTE}.")


def table_caption(effects: pd.DataFrame) -> str:
    """Under the table of every cell: what its map, k > map and seeds-to-resolve columns say."""
    marked = f" k > map: {WIDER_THAN_MAP_NOTE.partition(': ')[2]}." if map_caption(effects) else ""
    return ("map: the smallest feature map the depthwise filters see (- where it cannot be told here)." + marked
            + " seeds to resolve: the seeds a paired comparison needs to resolve a difference of the size seen, at "
            "the spread of differences seen (95% interval, 80% power); - when there is no spread yet.")


def map_caption(effects: pd.DataFrame) -> str:
    """A sentence for the figures' caption when some cell is marked k > map, else ''."""
    if "wider_than_map" not in effects or not effects["wider_than_map"].any():
        return ""
    meaning = WIDER_THAN_MAP_NOTE.partition(": ")[2]
    return f" k > map (an open square on the heatmap, open markers on the lines): {meaning}."


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


#: What Connect says on a server that has no Ray address and may not start a Ray of its own.
NO_RAY_HERE = ("This app has no Ray cluster to run sweeps on, and it starts no Ray on the server by itself: choose "
               "**this machine** to run sweeps here. To use Ray, whoever runs the app sets `CONVCOV_RAY_ADDRESS` to a "
               "cluster's address (`auto`, `host:port` or `ray://host:10001`), or `CONVCOV_RAY_LOCAL=1` to let "
               "sweeps start Ray on this machine, and restarts the app (docs/settings.md).")


class RayNotConfigured(ValueError):
    """No Ray address, and the app may not start a Ray of its own (settings.ray_local)."""


def ray_caption(address: str | None, start_local: bool) -> str:
    """Under "a Ray cluster": where Connect goes."""
    if address:
        return f"`CONVCOV_RAY_ADDRESS`: `{address}`"
    if start_local:
        return ("`CONVCOV_RAY_ADDRESS` is not set: each sweep starts a Ray of its own on this machine "
                "(`CONVCOV_RAY_LOCAL` is on).")
    return "No Ray cluster is set for this app (`CONVCOV_RAY_ADDRESS`), and it starts none of its own."


def no_executor_text(address: str | None, start_local: bool) -> str:
    """Where the Run button would be, while "a Ray cluster" is chosen and not connected."""
    if address or start_local:
        return "Connect to Ray in the sidebar to run there, or choose this machine."
    return ("No Ray cluster is set for this app (Connect in the sidebar says how to set one): choose this "
            "machine to run the sweep here.")


def connect_ray(address: str | None, start_local: bool = False) -> RaySpec:
    """The Ray cluster at `address` as a probe from a process of its own finds it (None: a Ray that
    each sweep starts on this machine, only with start_local): the server itself never connects to
    Ray (ray_job). RayNotConfigured (NO_RAY_HERE) for None without start_local; ValueError saying
    why there is none (Ray not installed, the cluster not answering)."""
    if address is None and not start_local:
        raise RayNotConfigured(NO_RAY_HERE)
    if importlib.util.find_spec("ray") is None:
        raise ValueError(f"Ray is not installed on this server: {INSTALL_HINT}, then restart the app.")
    try:
        return probe(address)
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
    on (progress_event); the sweep stops once the callback answers "stop" (Cancel). On Ray (a
    RaySpec) the sweep is driven from a process of its own, whose death interrupts the job
    (jobs.Interrupted), never the server."""
    def work(callback):
        stop = []

        def on_event(event: sweeps.SweepEvent) -> None:
            if event.kind != "queued" and callback(progress_event(event, grid)) == "stop":
                stop.append(True)

        if not isinstance(executor, RaySpec):
            return sweeps.run_sweep(grid, store, executor, on_event, lambda: bool(stop))
        try:
            return run_sweep_apart(grid, store.runs.path, executor, on_event, lambda: bool(stop))
        except DriverLost as exc:
            raise Interrupted(str(exc)) from None
    return work


def interrupted_text(status: JobStatus) -> str:
    """What the page says of a sweep job that was interrupted."""
    return (f"The sweep was interrupted: {status.message}. This server goes on; the trials finished before are "
            "kept in the run store, and Resume (below) runs the rest.")


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


def _map_text(row) -> str:
    side = row.get("map_side")
    return "-" if side is None or pd.isna(side) else f"{int(side)} x {int(side)}"


def effect_rows(effects: pd.DataFrame, grid: sweeps.Sweep) -> pd.DataFrame:
    """The effects table as the page shows it: cell, its feature map and whether its filters are
    wider (k > map), scheme, seeds, both means, the difference with its 95% interval, the winner
    and the seeds that would resolve the difference."""
    rows = []
    for _, r in readable(effects, grid).iterrows():
        rows.append({**{AXIS_TITLES.get(a, a): r[a] for a in grid.axes}, "map": _map_text(r),
                     "k > map": "yes" if r.get("wider_than_map") else "", "scheme": r["scheme"], "seeds": r["n"],
                     "mean %": _num(r["mean"]), f"{grid.reference} %": _num(r["reference_mean"]),
                     "difference": _num(r["diff_mean"], "+.2f"), "95% interval": _interval(r),
                     "winner": r["winner"] if isinstance(r["winner"], str) else "none",
                     "seeds to resolve": _num(r["seeds_needed"], ".0f")})
    return pd.DataFrame(rows)


def cell_notes(effects: pd.DataFrame, grid: sweeps.Sweep, cell: tuple) -> list[str]:
    """Per scheme of a cell: its difference against the reference with the interval, and the power
    note; then, for a cell marked wider_than_map, what k > map means on its map."""
    rows = _in_cell(effects, grid, cell)
    notes = [f"**{r['scheme']} − {grid.reference}:** {_num(r['diff_mean'], '+.2f')} points (95% interval "
             f"{_interval(r)}, {_plural(int(r['n']), 'paired seed')}); {power_note(r)}." for _, r in rows.iterrows()]
    wide = rows[rows["wider_than_map"].astype(bool)] if "wider_than_map" in rows else rows.iloc[:0]
    if len(wide):
        notes.append(f"**k > map** ({_map_text(wide.iloc[0])} maps): {WIDER_THAN_MAP_NOTE.partition(': ')[2]}.")
    return notes


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
              "max_steps": f"at most {base.max_steps} steps" if base.max_steps else "",
              "sigma_first": f"σ first {base.sigma_first:g}" if base.sigma_first is not None else "",
              "sigma_last": f"σ last {base.sigma_last:g}" if base.sigma_last is not None else ""}
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


def sweep_label(summary: sweeps.SweepSummary, running: bool = False) -> str:
    """How the list of stored sweeps names one: 'sweep-1: 6 of 8 trials finished (1 failed), 2024-05-01
    10:00 UTC'. A running sweep's count is left to its progress line, which refreshes on its own while
    this list is drawn once per page run (the count here would stay at what it was then)."""
    created = f"{summary.created[:16].replace('T', ' ')} UTC"
    if running:
        return f"{summary.name}: running, {_plural(summary.n_trials, 'trial')} (finished: see its progress), {created}"
    failed = f" ({summary.n_failed} failed)" if summary.n_failed else ""
    return f"{summary.name}: {summary.n_finished} of {_plural(summary.n_trials, 'trial')} finished{failed}, {created}"


# ---------------------------------------------------------------------------------------------
# Figure axes
# ---------------------------------------------------------------------------------------------

_PREFERRED = ("kernel_size", "model", "patch_size", "epochs", "dataset", "sigma_first", "sigma_last",
              "freeze_filters")


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


def work_notes(grid: sweeps.Sweep, pending: list, max_images: int, max_tflop: int, timings: list = (),
               slots: int = 1) -> tuple[str, list[str]]:
    """What the trials still to run will cost (work.total_work) against the server's caps, and how long
    trials like them took here (throughput.stored_estimate over RunStore.timings, `slots` at a time):
    a caption and a warning for each cap they exceed."""
    try:
        images, flops = work.total_work([trial.config for trial in pending])
    except ValueError as err:
        return f"The trials to run cannot be costed: {err}.", []
    tflop = flops / 1e12
    caption = (f"The {len(pending):,} trials to run: {caps.work_line(images, tflop)}; this server allows "
               f"{max_images:,} images and {max_tflop:,} TFLOP per job.")
    if pending:
        estimate = throughput.stored_estimate([trial.config for trial in pending], list(timings))
        caption += " " + caps.stored_time_line(estimate, slots)
    return caption, caps.cap_warnings("This sweep", images, tflop, max_images, max_tflop)

