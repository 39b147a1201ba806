"""What the command line prints: text tables, a comparison as text, a terminal progress bar, and the
JSON files that --json writes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..compare import ComparisonResult, device_and_precision
from ..comparison_table import comparison_table
from ..json_safe import json_safe
from ..text import duration
from ..train import ProgressEvent, size_label


def print_estimate(seconds: float, what: str, how: str) -> None:
    """'estimate: about <time> for 6 runs (HOW; timed on this machine now)' on stderr, before a
    long command starts its work."""
    print(f"estimate: about {duration(seconds)} for {what} ({how}; timed on this machine now)", file=sys.stderr,
          flush=True)


class TerminalProgress:
    """Callback drawing a progress bar with ETA on a terminal; elsewhere (a log file, a pipe) one line
    per finished run and a progress line every `log_interval` seconds in between."""

    def __init__(self, stream=None, width: int = 24, min_interval: float = 0.1, log_interval: float = 30.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.width, self.min_interval = width, min_interval
        self.log_interval = log_interval
        self.started = self.run_started = time.perf_counter()
        self.last_draw = 0.0
        self.drawn = False

    def __call__(self, event: ProgressEvent):
        now = time.perf_counter()
        frac = event.fraction_done()
        elapsed = now - self.started
        eta = elapsed * (1 - frac) / frac if frac > 0 else None
        where = f"run {event.run_index + 1}/{event.n_runs} {event.variant or ''} seed {event.seed}"
        if event.kind == "done":
            self._finished(event, where, now, eta)
            return None
        if event.together > 1:
            where = f"runs {event.group.start + 1}-{event.group.stop}/{event.n_runs} together"
        interval = self.min_interval if self.tty else self.log_interval
        if now - self.last_draw < interval and (event.kind == "step" or not self.tty):
            return None
        loss = f" loss {event.loss:.3f}" if event.loss is not None and event.together == 1 else ""
        status = (f"{100 * frac:3.0f}% {where} epoch {event.epoch} step {event.step}/{event.total_steps}"
                  f"{loss} ETA {duration(eta, compact=True)}")
        if not self.tty:
            self.stream.write(status.lstrip() + "\n")
            self.stream.flush()
            self.last_draw = now
            return None
        filled = int(round(self.width * frac))
        self.stream.write(f"\r\033[K[{'#' * filled}{'-' * (self.width - filled)}] {status}")
        self.stream.flush()
        self.last_draw, self.drawn = now, True
        return None

    def _finished(self, event: ProgressEvent, where: str, now: float, eta: float | None) -> None:
        """One line for a finished run, over the bar if one is drawn."""
        if self.tty and self.drawn:
            self.stream.write("\r\033[K")
        acc = f"test {event.test_acc:.2f}%" if event.test_acc is not None else event.status
        took = duration(now - self.run_started, compact=True)
        if event.together > 1:  # its group's time, said once, by the group's first run
            took = f"{took} for the {event.together} runs together" if event.position == 0 else "together"
        self.stream.write(f"{where}: {acc} ({took}), ETA {duration(eta, compact=True)}\n")
        self.stream.flush()
        self.drawn = False
        if event.together == 1 or event.position == event.together - 1:
            self.run_started = now


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned text table with a rule under the header."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def format_comparison(cmp: ComparisonResult) -> str:
    """The comparison as text: setup line, the results table (comparison_table), verdicts and times."""
    c = cmp.base_config
    setup = (f"{c.model} k={size_label(c.kernel_size)} p={size_label(c.patch_size)} on {c.dataset}, "
             f"{c.epochs} epoch(s){f' capped at {c.max_steps} step(s)' if c.max_steps else ''}, batch {c.batch_size}, "
             f"lr {c.lr:g}, seeds {','.join(map(str, cmp.seeds))}, "
             f"device {device_and_precision(cmp)}")
    table = comparison_table(cmp)
    lines = [setup, "", format_table(table.columns, table.rows), ""]
    lines += cmp.verdicts
    other = "test_acc_raw" if cmp.metric == "test_acc" else "test_acc"
    means = ", ".join(f"{r['variant']} {r['mean']:.1f}" for r in cmp.judged_on(other).rows if r["mean"] is not None)
    if means:
        what = {"test_acc_raw": "Raw eval-mode test accuracy, BatchNorm statistics as training left them",
                "test_acc": "Test accuracy with BatchNorm statistics recomputed after training"}[other]
        lines.append(f"{what} (mean %, not judged): {means}.")
    status = "" if cmp.status == "ok" else f" ({cmp.status}: only finished runs are counted)"
    lines.append(f"Total wall time {duration(cmp.wall_time, compact=True)} for "
                 f"{sum(len(v) for v in cmp.runs.values())} run(s){status}.")
    return "\n".join(lines)


def write_json(path: str, document: dict) -> None:
    """Write `document` as JSON (NaN and infinities as null) and say so on stderr."""
    Path(path).write_text(json.dumps(json_safe(document), indent=1, allow_nan=False))
    print(f"wrote {path}", file=sys.stderr)
