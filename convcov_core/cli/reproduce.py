"""`reproduce`: the papers' claims as fixed experiments over seeds, trained as sweeps on an executor
(the local process pool, or Ray), resumable from the run store; writes a report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import reproduce
from ..reproduce import regimes
from ..text import duration
from .args import Later, add_command
from .output import TerminalProgress, format_table, print_estimate
from .sweep import EXECUTOR_OPTIONS, executor_and_store


def cmd_reproduce(args) -> int:
    suite, folder = reproduce.prepare(args.suite, out=args.out, dataset=args.dataset, device=args.device)
    executor, store = executor_and_store(args)
    print(f"suite {suite.name}: {reproduce.suite_runs(suite)} training runs; "
          f"{suite.seed_rule.statement() if suite.seed_rule else f'{len(suite.seeds)} seeds'}", file=sys.stderr)
    print(f"executor: {executor.describe()}; runs already in {store.runs.path} are not trained again",
          file=sys.stderr)
    if not args.quiet:
        seconds, n_todo = reproduce.estimate_seconds(suite, executor, store)
        print_estimate(seconds, f"{n_todo} training run(s) left", "a few training steps of two runs of each sweep, "
                       "and of a claim 5 CNN")
    folder = reproduce.reproduce(suite, out=folder, callback=None if args.quiet else TerminalProgress(),
                                 executor=executor, store=store)
    report = reproduce.load_report(folder)
    print(reproduce.provenance(report))
    print(format_table(["#", "claim", "verdict", "regime measured", "our number"],
                       [[c["id"], c["title"], c["verdict"], (c.get("regime") or {}).get("measured", "-"),
                         c["our_number"]] for c in report["claims"]]))
    for c in report["claims"]:
        if c.get("verdict_note"):
            print(f"claim {c['id']}: {c['verdict_note']}")
    print(f"report written to {folder}", file=sys.stderr)
    return 0


REPRODUCE_OPTIONS = (
    ("--suite", dict(choices=Later(lambda: list(reproduce.SUITES)), default="quick",
                     help="tiny: a smoke test; quick: CPU-sized small ConvMixers, seeds by a power rule (its report "
                          "says how long it took); full: for a GPU")),
    ("--dataset", dict(default=None, help="dataset of claims 1-4 and 6 (default: the suite's own)")),
    ("--out", dict(default=None, metavar="DIR", help="report folder (default $CONVCOV_HOME/reports/<suite>-<time>)")),
    ("--device", dict(default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")),
    *EXECUTOR_OPTIONS,
)


def cmd_regimes(args) -> int:
    regime_map = regimes.build_map(args.map, device=args.device)
    executor, store = executor_and_store(args)
    print(f"regime map {regime_map.name}: {regime_map.n_trials} distinct trials in {len(regime_map.sweeps)} sweeps; "
          f"seeds: {regime_map.seed_rule}", file=sys.stderr)
    print(f"executor: {executor.describe()}; trials already in {store.runs.path} are not trained again",
          file=sys.stderr)
    if not args.quiet:
        seconds, n_todo = regimes.estimate_seconds(regime_map, store, executor)
        print_estimate(seconds, f"{n_todo} trial(s) left", "a few training steps of two trials of each sweep")
    started = time.perf_counter()
    finished = regimes.run_regime_map(regime_map, store, executor,
                                      None if args.quiet else _MapLines(), lambda: False)
    table = regimes.regime_table(regime_map, store)
    out = Path(args.out) if args.out else None
    if out is not None:
        regimes.write_report(regime_map, table, out, f"This call took {duration(time.perf_counter() - started)} "
                             f"on {executor.describe()}.")
        print(f"report written to {out}", file=sys.stderr)
    print(regimes.map_summary(table))
    return 0 if finished else 1


class _MapLines:
    """One stderr line per stored trial of the map, with its sweep's counts."""

    def __call__(self, event) -> None:
        if event.kind in ("done", "failed"):
            print(f"[{event.n_finished}/{event.n_total}] {event.kind} {event.trial.config.model} "
                  f"k={event.trial.config.kernel_size} p={event.trial.config.patch_size} {event.trial.init} "
                  f"seed {event.trial.seed}: {event.message}", file=sys.stderr, flush=True)


REGIMES_OPTIONS = (
    ("--map", dict(choices=Later(lambda: list(regimes.MAPS)), default="cpu",
                   help="cpu: about an hour on 2 cores (its report says how long it took); tiny: a smoke test")),
    ("--out", dict(default=None, metavar="DIR", help="write report.md, cells.csv and report.json here")),
    ("--device", dict(default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")),
    *EXECUTOR_OPTIONS,
)


# name: (help, command, the steps that build its options: see args.add_command)
COMMANDS = {"reproduce": ("test the papers' claims with small experiments; write a report", cmd_reproduce,
                          REPRODUCE_OPTIONS),
            "regimes": ("where does the Gaussian init help? Gaussian vs default over patch size, width, sigma "
                        "schedule, training length and data; resumable; writes a report", cmd_regimes,
                        REGIMES_OPTIONS)}


def add_parsers(sub, names=None) -> None:
    """Register the sub-parsers of the commands `names` (default: all of this module's, in order)."""
    for name in COMMANDS if names is None else names:
        add_command(sub, name, *COMMANDS[name])
