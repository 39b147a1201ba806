"""Plain-text formatting shared by the CLI, the Training Lab and the claims report."""

from __future__ import annotations

import math


def duration(seconds: float | None, *, compact: bool = False) -> str:
    """'45 s', '3 min 20 s', '1 h 05 min' (compact: '45s', '3m20s', '1h05m'); '?' for None or NaN."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    units = ("s", "m", "h", "m") if compact else (" s", " min", " h", " min")
    if s < 60:
        return f"{s}{units[0]}"
    if s < 3600:
        return f"{s // 60}{units[1]}{'' if compact else ' '}{s % 60:02d}{units[0]}"
    return f"{s // 3600}{units[2]}{'' if compact else ' '}{s % 3600 // 60:02d}{units[3]}"


def number(value, spec: str = ".2f", missing: str = "-") -> str:
    """`value` formatted with `spec`, or `missing` for None."""
    return missing if value is None else format(value, spec)
