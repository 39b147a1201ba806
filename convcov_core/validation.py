"""Argument checks shared by the analyses and the datasets.

Each returns the value as a plain Python int, float or bool, or raises ValueError naming the
argument: whole_number for the analyses (any integer type, via operator.index), int_param,
float_param and bool_param for the datasets' keyword options (their messages are the datasets').
"""

from __future__ import annotations

import operator

import numpy as np


def whole_number(value, name: str, minimum: int) -> int:
    """`value` as an int (Python or NumPy integer, not bool) >= minimum, else ValueError."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return number


def int_param(value, what: str, low: int = 1) -> int:
    """A dataset's whole-number option (whole_number)."""
    return whole_number(value, what, low)


def float_param(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"{what} must be a number >= 0, got {value!r}")
    return float(value)


def bool_param(value, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be True or False, got {value!r}")
    return bool(value)
