"""Plain data for strict JSON (json.dumps(..., allow_nan=False))."""

from __future__ import annotations

import math

import numpy as np


def json_safe(value):
    """NaN and infinities (diverged runs) -> None, numpy scalars -> Python numbers, dict keys -> str,
    tuples -> lists; recursively."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
