"""`sweep`: many seeded runs over a grid of training settings (run, resume, show, list, delete).

`sweep run` takes compare's training flags; a comma list or a range (0-9) in one of them makes it an
axis of the grid. The grid is checked, its trial count and an estimated time printed, before anything
runs; results go to the run store as they come, so a sweep stopped in any way resumes with `sweep
resume NAME`.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import pandas as pd

from .. import sweep
from ..compare import METRICS
from ..sweep.results import WIDER_THAN_MAP_NOTE
from ..sweep.run import trial_seconds
from ..text import duration, number
from ..train import TrainConfig
from ..train.config import settings_of
from .args import DB, QUIET, Later, add_command, number_in, span
from .output import format_table
from .training import COMPARE_OPTIONS, SETTING_FLAGS, training_config

#: compare's flags that may hold a list in `sweep run`, and the TrainConfig field each one sets: every
#: field that is a sweep axis (Setting.axis) with an option that takes a value, in compare's order
#: (--freeze none,filters and the switch --compile are the axes it leaves out).
_FIELD_OF_FLAG = {flag: field for field, flag in SETTING_FLAGS.items()}
AXIS_FLAGS = {flags: _FIELD_OF_FLAG[flags] for flags, kwargs in COMPARE_OPTIONS
              if _FIELD_OF_FLAG.get(flags) in sweep.AXES and kwargs.get("action") != "store_true"}
_NOT_FOR_SWEEPS = ("--learned-from", "--raw-bn-eval", "--json", "--save", "--name", "--threads", "--freeze", "--db",
                   "--quiet", "--ensemble")
_FREEZE_WORDS = {"none": False, "filters": True}


def _axis_type(field: str):
    """The argparse type of an axis flag: a comma list or range of the field's values, each in its
    Setting's range (the kernel size's cap is checked after parsing, saying why: cli.main)."""
    described = settings_of(TrainConfig)[field]

    def parse(text: str) -> list:
        try:
            values = sweep.parse_values(field, text)
            return values if field == "kernel_size" else [described.check(field, value) for value in values]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _text(value) -> str:
    return value.compute() if isinstance(value, Later) else value


def _freeze_list(text: str) -> list[bool]:
    words = [w.strip() for w in text.split(",")]
    if not words or any(w not in _FREEZE_WORDS for w in words):
        raise argparse.ArgumentTypeError(f"expected none, filters or none,filters, got {text!r}")
    return [_FREEZE_WORDS[w] for w in words]


def _sweep_options():
    """compare's options, with every axis flag taking a comma list or range."""
    out = []
    for flags, kwargs in COMPARE_OPTIONS:
        if flags in _NOT_FOR_SWEEPS:
            continue
        if flags in AXIS_FLAGS:
            default = kwargs.get("default")
            kwargs = dict(kwargs, type=_axis_type(AXIS_FLAGS[flags]), default=None if default is None else [default],
                          help=Later(lambda help=kwargs["help"]: _text(help) + "; a comma list or range makes it "
                                                                              "an axis of the grid"))
            kwargs.pop("choices", None)
        out.append((flags, kwargs))
    return tuple(out)


CPUS_PER_TRIAL = (0, 1024)  # (excluded, included): Ray takes fractions of a CPU
GPUS_PER_TRIAL = (0, 64)

EXECUTOR_OPTIONS = (
    ("--executor", dict(choices=sweep.EXECUTORS, default="local",
                        help="local: worker processes on this machine; ray: Ray tasks on a cluster "
                             "(pip install 'convcov[ray]')")),
    ("--workers", dict(type=int, default=None, help="local: worker processes (default one per GPU, else one per "
                                                    "core); ray without --ray-address: CPUs of the Ray started here")),
    ("--ray-address", dict(default=None, metavar="ADDR",
                           help="Ray cluster: auto, host:port or ray://host:10001 (default $CONVCOV_RAY_ADDRESS, "
                                "else a Ray started on this machine)")),
    ("--cpus-per-trial", dict(type=number_in(*CPUS_PER_TRIAL, above=True), default=1,
                              help=f"ray: CPUs each trial asks for, {span(*CPUS_PER_TRIAL, above=True)} (its torch "
                                   "threads: the whole part, at least 1)")),
    ("--gpus-per-trial", dict(type=number_in(*GPUS_PER_TRIAL), default=0,
                              help=f"ray: GPUs each trial asks for, {span(*GPUS_PER_TRIAL)} (fractions allowed)")),
    ("--ensemble", dict(action=argparse.BooleanOptionalAction, default=None,
                        help="hand a worker a cell's compatible trials (its seeds and schemes) to train together as "
                             "one grouped network, instead of one trial at a time (default: on a GPU, not on the "
                             "CPU)")),
    DB,
    QUIET,
)

RUN_OPTIONS = (
    ("--name", dict(required=True, help="the sweep's name (letters, digits, '.', '-', '_'); resume it by name")),
    *_sweep_options(),
    ("--freeze", dict(type=_freeze_list, default="none",
                      help="none (filters trained), filters (frozen), or none,filters (an axis)")),
)


def _grid(args) -> sweep.Sweep:
    """The sweep the flags describe: one-value flags go into the base config, lists become axes."""
    single, axes = copy.copy(args), {}
    for flag, field in AXIS_FLAGS.items():
        dest = flag[2:].replace("-", "_")
        values = getattr(args, dest)
        if isinstance(values, list):
            if len(values) > 1:
                axes[field] = values
            setattr(single, dest, values[0])
    if len(args.freeze) > 1:
        axes["freeze_filters"] = args.freeze
    single.threads = None
    base = training_config(single).replace(freeze_filters=args.freeze[0])
    return sweep.Sweep(args.name, base, axes, args.inits, args.seeds).validate()


def executor_from(args) -> sweep.Executor:
    """The executor EXECUTOR_OPTIONS describe (the Ray address from the flag or $CONVCOV_RAY_ADDRESS)."""
    from .. import settings
    return sweep.make_executor(args.executor, workers=args.workers,
                               ray_address=args.ray_address or settings.ray_address(),
                               cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                               ensemble=args.ensemble)


def executor_and_store(args) -> tuple[sweep.Executor, sweep.SweepStore]:
    """(executor, store) for a command that trains: an unreachable cluster is refused before the store
    is made, a read-only store before any trial runs."""
    executor = executor_from(args)
    store = sweep.SweepStore(args.db)
    store.check_writable()
    return executor, store


def _estimate(grid: sweep.Sweep, executor: sweep.Executor, n_todo: int) -> str:
    """Time for the trials left: sweep.trial_seconds times the trials left, over the trials that run at once."""
    if not n_todo:
        return "nothing left to run"
    seconds = trial_seconds(grid, executor)
    return (f"about {duration(seconds * n_todo / executor.slots)} for {n_todo} trial(s) ({duration(seconds)} "
            f"each, {executor.slots} at once; timed on this machine now)")


class SweepLines:
    """Progress of a sweep on stderr: one line per stored trial, and running trials' steps every
    `every` seconds."""

    def __init__(self, grid: sweep.Sweep, stream=None, every: float = 30.0):
        self.grid, self.stream, self.every, self.last = grid, stream or sys.stderr, every, 0.0

    def __call__(self, event: sweep.SweepEvent) -> None:
        trial = event.trial
        where = " ".join([*(f"{a}={v}" for a, v in zip(self.grid.axes, trial.cell)), trial.init, f"seed {trial.seed}"])
        counts = f"[{event.n_finished}/{event.n_total}]"
        if event.kind in ("done", "failed"):
            self._write(f"{counts} {event.kind} {where}: {event.message} (ETA {duration(event.eta_s)})")
        elif event.kind == "running" and time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self._write(f"{counts} running {where}: step {event.step}/{event.total_steps}, "
                        f"loss {number(event.loss, '.3f')}")

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def _run(grid: sweep.Sweep, args) -> int:
    executor, store = executor_and_store(args)
    n_stored = len(store.finished(t.key for t in grid.trials()))
    print(f"sweep {grid.name}: {grid.n_trials} trials ({grid.n_cells} cell(s) x {len(grid.inits)} scheme(s) x "
          f"{len(grid.seeds)} seed(s)), {n_stored} already in {store.runs.path}", file=sys.stderr)
    print(f"executor: {executor.describe()}", file=sys.stderr)
    print(f"estimate: {_estimate(grid, executor, grid.n_trials - n_stored)}", file=sys.stderr)
    outcome = sweep.run_sweep(grid, store, executor, None if args.quiet else SweepLines(grid))
    print(f"sweep {grid.name}: ran {outcome.ran} trial(s) ({outcome.failed} failed), {outcome.skipped} found "
          f"stored, in {duration(outcome.wall_time)}", file=sys.stderr)
    print(format_effects(grid, sweep.cell_effects(grid, sweep.trial_table(grid, store))))
    return 0


def cmd_run(args) -> int:
    return _run(_grid(args), args)


def cmd_resume(args) -> int:
    return _run(sweep.SweepStore(args.db).get(args.name), args)


def format_effects(grid: sweep.Sweep, effects) -> str:
    """The effect table: per cell and scheme, the paired difference against the reference, and the
    cell's feature map ("k > map" where its filters are wider than it, with what that means below)."""
    def cell(value, spec=".2f"):
        return "-" if value is None or pd.isna(value) else format(int(value) if spec == "d" else value, spec)

    def feature_map(r):
        side = r.get("map_side")
        return "-" if side is None or pd.isna(side) else f"{int(side)} x {int(side)}"

    rows = [[*(str(r[a]) for a in grid.axes), feature_map(r), "k > map" if r.get("wider_than_map") else "",
             r["scheme"], r["n"], cell(r["mean"]), cell(r["reference_mean"]), cell(r["diff_mean"], "+.2f"),
             f"{cell(r['diff_low'], '+.2f')} to {cell(r['diff_high'], '+.2f')}", r["winner"] or "none",
             cell(r["seeds_needed"], "d")] for r in effects.to_dict("records")]
    header = [*grid.axes, "map", "k > map", "scheme", "seeds", "mean %", f"{grid.reference} %", "diff",
              "95% interval", "winner", "seeds to resolve"]
    if not rows:
        return "no cells"
    marked = any(r.get("wider_than_map") for r in effects.to_dict("records"))
    return format_table(header, rows) + (f"\n{WIDER_THAN_MAP_NOTE}." if marked else "")


def cmd_show(args) -> int:
    store = sweep.SweepStore(args.db)
    grid = store.get(args.name)
    table = sweep.trial_table(grid, store)
    metric = "test_acc_raw" if args.raw_bn_eval else "test_acc"
    effects = sweep.cell_effects(grid, table, metric)
    counts = table["status"].value_counts().to_dict()
    print(f"sweep {grid.name}: {len(table)} trials; " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    print(format_effects(grid, effects))
    for path in filter(None, (args.csv, args.json)):
        written = sweep.write_table(table, path)
        effects_path = sweep.write_table(effects, written.with_name(f"{written.stem}.effects{written.suffix}"))
        print(f"wrote {written} (one row per trial) and {effects_path} (one row per cell and scheme)",
              file=sys.stderr)
    return 0


def cmd_list(args) -> int:
    store = sweep.SweepStore(args.db)
    rows = [[s.name, s.created, s.n_trials, s.n_finished, s.n_failed, ",".join(s.spec["axes"]) or "-",
             ",".join(s.spec["inits"])] for s in store.list()]
    print(format_table(["name", "created", "trials", "finished", "failed", "axes", "schemes"], rows)
          if rows else f"no sweeps in {store.runs.path}")
    return 0


def cmd_delete(args) -> int:
    deleted = sweep.SweepStore(args.db).delete(args.name)
    print(f"deleted sweep {args.name} and {deleted} run(s) no other sweep uses", file=sys.stderr)
    return 0


NAME = ("name", dict(help="the sweep's name"))
ACTIONS = (
    ("run", "run a new sweep (or the rest of one with the same name and grid)", cmd_run,
     (RUN_OPTIONS, EXECUTOR_OPTIONS)),
    ("resume", "run the trials of a stored sweep that are not in the store yet", cmd_resume,
     ((NAME,), EXECUTOR_OPTIONS)),
    ("show", "a sweep's effect per cell; its tables as CSV or JSON", cmd_show,
     ((NAME,
       ("--csv", dict(default=None, metavar="FILE", help="write the trials (and FILE.effects.csv) as CSV")),
       ("--json", dict(default=None, metavar="FILE", help="write the trials (and FILE.effects.json) as JSON")),
       ("--raw-bn-eval", dict(action="store_true", help="judge the raw eval-mode test accuracy "
                                                        f"({METRICS['test_acc_raw']})")),
       DB),)),
    ("list", "the sweeps in the store, with how many trials are finished", cmd_list, ((DB,),)),
    ("delete", "delete a sweep and the runs no other sweep shares", cmd_delete, ((NAME, DB),)),
)


def add_sweep_actions(parser) -> None:
    actions = parser.add_subparsers(dest="sweep_command", required=True, metavar="ACTION")
    for name, help, command, tables in ACTIONS:
        add_command(actions, name, help, command, *tables)


COMMANDS = {"sweep": ("many seeded runs over a grid, locally or on Ray: run, resume, show, list, delete", None,
                      add_sweep_actions)}


def add_parsers(sub, names=None) -> None:
    for name in COMMANDS if names is None else names:
        add_command(sub, name, *COMMANDS[name])


__all__ = ["AXIS_FLAGS", "add_parsers", "format_effects"]
