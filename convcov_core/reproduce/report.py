"""The report of a suite: make_report (a JSON-safe dict), provenance (when, where, how long),
markdown_report, and write_report (report.json, report.md and one PNG per claim)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from .. import __version__
from ..comparison_table import Table, comparison_table
from ..json_safe import json_safe
from ..plots import claims as claim_plots
from ..text import duration, number
from ..train import RunResult
from .claims import CNFA_THRESHOLD, FIT_R_MIN, build_claims, verdict_at
from .files import REPORT_FORMAT, REPORT_JSON, REPORT_MD
from .rules import RULES
from .suites import SuiteRuns, suite_runs


def _device_label(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"GPU ({torch.cuda.get_device_name(torch.device(device))})"
    if device.startswith("mps"):
        return "Apple MPS"
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def _run_rows(runs: SuiteRuns) -> list[dict]:
    rows = []

    def add(stage: str, variant: str, run: RunResult):
        rows.append({"stage": stage, "variant": variant, "seed": run.config.seed, "status": run.status,
                     "test_acc": run.final.get("test_acc"), "test_acc_raw": run.final.get("test_acc_raw"),
                     "wall_time": run.wall_time, "device": run.device})

    for label, run in runs.source_runs().items():
        add("claim 3 source", "default" if runs.suite.source is not None else label, run)
    for name, done in runs.comparison.runs.items():
        for run in done:
            add("claims 1-4", name, run)
    for stage, table, frozen in (("claim 6 map", runs.map_table, ""), ("claim 2 cases", runs.frozen_table, "-frozen")):
        if table is None:
            continue
        axes = list(runs.effect_map.axes)
        for _, row in table.iterrows():
            cell = ", ".join(f"{a} {row[a]}" for a in axes)
            rows.append({"stage": stage, "variant": f"{row['init']}{frozen} ({cell})", "seed": int(row["seed"]),
                         "status": row["status"], "test_acc": row["test_acc"], "test_acc_raw": row["test_acc_raw"],
                         "wall_time": row["wall_time"], "device": None})
    for seed, v in runs.cnfa.items():
        rows.append({"stage": "claim 5 CNN", "variant": "trained", "seed": seed, "status": "ok",
                     "test_acc": v["test_acc"], "test_acc_raw": None, "wall_time": None, "device": None})
    return rows


def make_report(runs: SuiteRuns) -> dict:
    """The report as a JSON-safe dict: when, where and how long; settings; rules; claims; runs."""
    suite = runs.suite
    device = next((r.device for done in runs.comparison.runs.values() for r in done), "cpu")
    settings = {"seeds": suite.seeds, "target": suite.base.to_dict(), "variants": suite.variants,
                "source": suite.source.to_dict() if suite.source is not None else "bundled example",
                "cnn": suite.cnn.to_dict(), "cnfa_images": suite.cnfa_images,
                "margin_points": suite.margin, "cnfa_threshold": CNFA_THRESHOLD, "fit_r_min": FIT_R_MIN,
                "seed_rule": suite.seed_rule.statement() if suite.seed_rule else None,
                "effect_map": suite.effect_map}
    return json_safe({
        "format": REPORT_FORMAT, "suite": suite.name, "description": suite.description,
        "created": datetime.fromtimestamp(runs.started, timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": runs.wall_time, "cpu_time_s": runs.cpu_time, "runs_total": suite_runs(suite),
        "runs_trained": runs.n_trained, "torch_threads": torch.get_num_threads(),
        "device": device, "device_label": _device_label(device),
        "cpu_count": os.cpu_count(), "load_average": {"start": runs.load_start, "end": runs.load_end},
        "versions": {"convcov": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "rules": RULES, "settings": settings, "notes": runs.notes, "claims": build_claims(runs),
        "runs": _run_rows(runs), "comparison_verdicts": runs.comparison.verdicts,
        "comparison_table": dataclasses.asdict(comparison_table(runs.comparison)),
    })


def provenance(report: dict) -> str:
    """One paragraph: when, on what, how long, and how busy the machine was."""
    when = report["created"].replace("T", " ").replace("+00:00", " UTC")
    cpu = report.get("cpu_time_s")
    cpu = f"; the process used {duration(cpu)} of CPU time" if cpu is not None else ""
    text = (f"Produced {when} on {report['device_label']} in {duration(report['wall_time_s'])} (wall time "
            f"of the experiments{cpu}), convcov {report['versions']['convcov']}, torch "
            f"{report['versions']['torch']}.")
    trained, total = report.get("runs_trained"), report.get("runs_total")
    if trained is not None and total and trained < total:
        text += (f" {trained} of its {total} runs were trained in this call; the other {total - trained} were read "
                 "from the run store, where an earlier call of the same suite had stored them.")
    load = report.get("load_average") or {}
    values = [v[0] for v in (load.get("start"), load.get("end")) if v]
    if values and report.get("cpu_count"):
        text += (f" The 1-minute load average was {values[0]:g} at the start and {values[-1]:g} at the end "
                 f"on {report['cpu_count']} CPUs")
        if max(values) > report["cpu_count"]:
            text += ": other processes shared the machine, so this wall time is an upper bound"
        text += "."
    return text


def _part_row(part: dict) -> str:
    seeds = " / ".join(number(v) for v in part["per_seed"].values())
    spread = f"{number(part['mean'], '+.2f')} ± {number(part['se'])}"
    bounds = f"[{number(part['low'], '+.2f')}, {number(part['high'], '+.2f')}]"
    favour = f"{part['favour_a']}/{part['n']}" if "favour_a" in part else ""
    return f"| {part['statement']} | {seeds} | {spread} | {bounds} | {favour} | **{part['verdict']}** |"


def markdown_report(report: dict, figures: dict) -> str:
    """The report as Markdown: verdict table, rules, then per claim setup, numbers, verdict, figure."""
    lines = [f"# Paper claims: {report['suite']} suite", "", provenance(report), "", report["description"], ""]
    if report["settings"].get("seed_rule"):
        lines += [f"Seeds: {report['settings']['seed_rule']}.", ""]
    lines += ["| # | Claim | Our number | Verdict | Regime measured | The paper's regime |",
              "|---|---|---|---|---|---|"]
    for c in report["claims"]:
        regime = c.get("regime") or {}
        note = f" ({c['verdict_note']})" if c.get("verdict_note") else ""
        lines.append(f"| {c['id']} | {c['title']} | {c['our_number']} | **{c['verdict']}** at this regime{note} | "
                     f"{regime.get('measured', '-')} | {regime.get('paper', '-')} |")
    lines += ["", "## How verdicts are decided", "",
              f"Margin m = {report['settings']['margin_points']:g} accuracy point(s).", ""]
    lines += [f"- **{name}**: {text}" for name, text in report["rules"].items()]
    for note in report.get("notes", []):
        lines.append(f"- Note: {note}")
    table = report["comparison_table"]
    lines += ["", "## The comparison behind claims 1-4", "",
              "Test accuracy with BatchNorm statistics recomputed on training images after the last step; "
              "each variant against the default init (trained filters), judged by the rule the Training "
              "Lab and `compare` use.", "", Table(table["columns"], table["rows"]).markdown(), ""]
    lines += [f"- {verdict}" for verdict in report["comparison_verdicts"]]
    for c in report["claims"]:
        lines += ["", f"## Claim {c['id']}: {c['title']}", "", f"> {c['claim']} ({c['source']})", "",
                  f"**Setup.** {c['setup']}", ""]
        table = c["numbers"].get("table")
        if table:
            lines += ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
            lines += ["| " + " | ".join(row) + " |" for row in table["rows"]]
            lines.append("")
        lines += ["| test | per seed | mean ± SE | interval | seeds favouring A | verdict |",
                  "|---|---|---|---|---|---|"]
        lines += [_part_row(p) for p in c["parts"]]
        lines += ["", f"**Our number:** {c['our_number']}.  **Verdict: {verdict_at(c)}.**"]
        if c.get("verdict_note"):
            lines += ["", f"*{c['verdict_note']}*"]
        if c["id"] in figures:
            lines += ["", f"![Claim {c['id']}]({figures[c['id']]})"]
    lines += ["", "## Runs", "", "Test accuracy with settled BatchNorm statistics, and raw (the statistics "
              "training left; the CNFA CNN has no BatchNorm).", "",
              "| stage | variant | seed | status | test acc % | raw % | s |", "|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        lines.append(f"| {r['stage']} | {r['variant']} | {r['seed']} | {r['status']} | {number(r['test_acc'])} | "
                     f"{number(r.get('test_acc_raw'))} | {number(r['wall_time'], '.0f')} |")
    lines += ["", "Figures are PNG files drawn with matplotlib; the app's Paper Claims page draws the same "
              "numbers interactively from report.json." if figures else
              "Figures were not drawn: matplotlib is not installed (the Paper Claims page draws them).", ""]
    return "\n".join(lines)


def write_report(report: dict, out: str | os.PathLike) -> Path:
    """report.json, report.md and one PNG per claim (matplotlib, when installed) in folder `out`."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    figures = {}
    if claim_plots.can_draw_png():
        for c in report["claims"]:
            name = f"claim{c['id']}.png"
            claim_plots.save_png(c["figure"], folder / name)
            figures[c["id"]] = name
    (folder / REPORT_JSON).write_text(json.dumps(report, indent=1, allow_nan=False), encoding="utf-8")
    (folder / REPORT_MD).write_text(markdown_report(report, figures), encoding="utf-8")
    return folder
