"""The Paper Claims page's presenter: how a report is named in the list, a verdict in colour, the table of
claims, one claim's tests as rows, and what the page says about running the quick suite here. No
streamlit here."""

from __future__ import annotations

from convcov_core import reproduce, text

COLOURS = {reproduce.SUPPORTED: "green", reproduce.NOT_SUPPORTED: "red", reproduce.INCONCLUSIVE: "orange"}


def verdict_text(verdict: str) -> str:
    return f":{COLOURS.get(verdict, 'gray')}[**{verdict}**]"


def report_label(folder, report: dict) -> str:
    where = "reports" if folder.parent == reproduce.report_folders()[0] else "your reports"
    when = report.get("created", "?").replace("T", " ")[:16]
    return f"{report.get('suite', '?')} suite, {when} UTC ({where}/{folder.name})"


def run_caption(n_runs: int, images: int, cap: int, device: str, reports: list) -> str:
    """Beside the Run button: what the quick suite trains, or why this server does not run it."""
    if images > cap:
        return (f"The quick suite trains {n_runs} small models on {images:,} images, more than one job may use on "
                f"this server ({cap:,}, CONVCOV_MAX_JOB_SAMPLES). Run `convcov reproduce --suite quick` in a "
                "terminal, or start the app with a larger CONVCOV_MAX_JOB_SAMPLES.")
    quick = [r for _, r in reports if r.get("suite") == "quick"]
    took = (f" The latest quick report took {text.duration(quick[0]['wall_time_s'])} on "
            f"{quick[0]['device_label']}." if quick else "")
    return (f"Trains {n_runs} small models in the background on this server ({device}).{took} Its report "
            "appears here when it is done.")


def part_row(part: dict) -> dict:
    """One test of a claim as a table row: the statement, its interval (or layer count), the verdict."""
    if part["low"] is None:
        numbers = f"{part['n']} seed(s): too few for an interval"
    else:
        numbers = f"{part['mean']:+.2f}, interval [{part['low']:+.2f}, {part['high']:+.2f}], n = {part['n']}"
    return {"test": part["statement"], "numbers": numbers, "verdict": part["verdict"]}


def claims_table(claims: list[dict]) -> str:
    """Every claim in one Markdown table: number, title, our number, verdict, the regime measured."""
    return "| # | Claim | Our number | Verdict | Regime measured |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {c['id']} | {c['title']} | {c['our_number']} | {verdict_text(c['verdict'])}"
        f"{' (see the note below)' if c.get('verdict_note') else ''} | "
        f"{(c.get('regime') or {}).get('measured', 'not recorded (report from before regimes)')} |"
        for c in claims)
