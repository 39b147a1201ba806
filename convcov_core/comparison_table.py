"""The results table of a comparison, built once and rendered by the Training Lab (a dataframe),
the CLI (plain text) and the claims report (Markdown): the same cells and the same verdict in all
three.

One row per variant: its accuracy over seeds (mean ± std), each seed's accuracy (or what stopped
the run), the paired difference against its reference with the 95% t interval of its mean
(stats.paired_verdict), on how many seeds it was ahead, the verdict of that rule, and the time
per run.
"""

from __future__ import annotations

from dataclasses import dataclass

from .compare import METRICS, ComparisonResult
from .text import duration, number


@dataclass
class Table:
    """Column names and rows of cells (strings)."""

    columns: list
    rows: list

    def records(self) -> list[dict]:
        """One {column: cell} dict per row (a dataframe's input)."""
        return [dict(zip(self.columns, row)) for row in self.rows]

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in self.rows])


def _pm(mean, std, spec: str = ".1f") -> str:
    if mean is None:
        return "–"
    return f"{mean:{spec}} ± {std:.1f}" if std is not None else format(mean, spec)


def verdict_cell(row: dict) -> str:
    """What the one rule says of a row: the winner's name, "no clear winner", "needs 2+ seeds",
    or "reference"."""
    if row["reference"] is None:
        return "reference"
    if len(row["diffs"]) < 2:
        return "needs 2+ seeds"
    return f"{row['winner']} better" if row["winner"] else "no clear winner"


def _difference(row: dict) -> str:
    if row["reference"] is None:
        return "reference"
    if row["diff_mean"] is None:
        return "–"
    if row["diff_low"] is None:
        return f"{row['diff_mean']:+.1f} vs {row['reference']}"
    return (f"{row['diff_mean']:+.1f} [{row['diff_low']:+.1f}, {row['diff_high']:+.1f}] "
            f"vs {row['reference']}")


def comparison_table(cmp: ComparisonResult) -> Table:
    """The results table of a comparison (see the module docstring)."""
    what = METRICS[cmp.metric]
    columns = ["variant", f"{what} % (mean ± std)", f"per seed ({', '.join(map(str, cmp.seeds))})",
               "Δ vs reference, points [95% interval]", "seeds ahead", "verdict", "time per run"]
    rows = []
    for r in cmp.rows:
        per_seed = ", ".join(number(r["per_seed"].get(s), ".1f", "–") if r["per_seed"].get(s) is not None
                             else r["statuses"].get(s, "not run") for s in cmp.seeds)
        ahead = f"{r['wins']}/{len(r['diffs'])}" if r["reference"] is not None and r["diffs"] else ""
        rows.append([r["variant"], _pm(r["mean"], r["std"]), per_seed, _difference(r), ahead,
                     verdict_cell(r), duration(r["mean_time"])])
    return Table(columns, rows)
