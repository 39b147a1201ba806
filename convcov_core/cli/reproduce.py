"""`reproduce`: the papers' claims as fixed experiments over seeds, trained as sweeps on an executor
(the local process pool, or Ray), resumable from the run store; writes a report."""

from __future__ import annotations

import sys

from .. import reproduce
from ..sweep import SweepStore
from .args import Later, add_command
from .output import TerminalProgress, format_table
from .sweep import EXECUTOR_OPTIONS, executor_from


def cmd_reproduce(args) -> int:
    suite, folder = reproduce.prepare(args.suite, out=args.out, dataset=args.dataset, device=args.device)
    executor, store = executor_from(args), SweepStore(args.db)
    print(f"suite {suite.name}: {reproduce.suite_runs(suite)} training runs; "
          f"{suite.seed_rule.statement() if suite.seed_rule else f'{len(suite.seeds)} seeds'}", file=sys.stderr)
    print(f"executor: {executor.describe()}; runs already in {store.runs.path} are not trained again",
          file=sys.stderr)
    folder = reproduce.reproduce(suite, out=folder, callback=None if args.quiet else TerminalProgress(),
                                 executor=executor, store=store)
    report = reproduce.load_report(folder)
    print(reproduce.provenance(report))
    print(format_table(["#", "claim", "verdict", "our number"],
                       [[c["id"], c["title"], c["verdict"], c["our_number"]] for c in report["claims"]]))
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


# name: (help, command, the steps that build its options: see args.add_command)
COMMANDS = {"reproduce": ("test the papers' claims with small experiments; write a report", cmd_reproduce,
                          REPRODUCE_OPTIONS)}


def add_parsers(sub, names=None) -> None:
    """Register the sub-parsers of the commands `names` (default: all of this module's, in order)."""
    for name in COMMANDS if names is None else names:
        add_command(sub, name, *COMMANDS[name])
