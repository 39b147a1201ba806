"""Report files: their names and format, where a new report goes (default_out), and reading and
finding reports (load_report, report_folders, find_reports)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from ..paths import REPO_REPORTS, convcov_home

REPORT_JSON, REPORT_MD = "report.json", "report.md"
REPORT_FORMAT = 2


def default_out(suite: str) -> Path:
    """$CONVCOV_HOME/reports/<suite>-<UTC timestamp>."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return convcov_home() / "reports" / f"{suite}-{stamp}"


def load_report(folder: str | os.PathLike) -> dict:
    """The report.json of a folder; ValueError when it is missing or not a convcov report."""
    path = Path(folder) / REPORT_JSON
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"no {REPORT_JSON} in {folder}") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON ({err})") from None
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT or "claims" not in report:
        raise ValueError(f"{path} is not a convcov claims report (format {REPORT_FORMAT})")
    return report


def report_folders() -> list[Path]:
    """Where reports are looked for: the repository's reports/ and $CONVCOV_HOME/reports."""
    return [REPO_REPORTS, convcov_home() / "reports"]


def find_reports(folders: list[Path] | None = None) -> list[tuple[Path, dict]]:
    """(folder, report) of every readable report one level below the given folders, newest first."""
    found = []
    for root in folders if folders is not None else report_folders():
        if not Path(root).is_dir():
            continue
        for path in sorted(Path(root).glob(f"*/{REPORT_JSON}")):
            try:
                found.append((path.parent, load_report(path.parent)))
            except ValueError:
                continue
    return sorted(found, key=lambda item: item[1].get("created", ""), reverse=True)
