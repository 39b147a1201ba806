"""The Filter Gallery's presenter: the sample sizes offered, how many scheme columns share a row and how
wide they are, the figures' sizes and titles in a column, and what the page says about each scheme and
an uploaded covariance. No streamlit here."""

from __future__ import annotations

import math
from dataclasses import dataclass

from convcov_core import init
from convcov_core.scheme_sample import SPECTRUM_FILTERS

from . import labels

SAMPLE_SIZES = (100, 300, 1000, 3000, 10000, 20000)
#: The scheme name of the visitor's uploaded covariance, sampled as a learned one.
UPLOADED = "uploaded"
UPLOADED_LABEL = "Your covariance (uploaded)"
ROW_SCHEMES = 3  # schemes side by side; more start a new row
#: At a 1280 px window the main area is 820 px wide, its columns 32 px apart.
MAIN_WIDTH, GAP = 820, 32
MAX_WIDTH = 480  # a single scheme's plots stop growing here


def heading(scheme: str) -> str:
    return UPLOADED_LABEL if scheme == UPLOADED else labels.scheme_label(scheme)


def sampled_as(scheme: str) -> str:
    """The init scheme a column samples: an upload is sampled as a learned covariance."""
    return init.LEARNED if scheme == UPLOADED else scheme


def described(schemes: list[str]) -> str:
    """What the chosen schemes draw, one Markdown bullet each ("" for an upload alone)."""
    return "\n".join(f"- **{labels.scheme_label(name)}**: {labels.scheme_help(name)}"
                     for name in schemes if name != UPLOADED)


def columns(n_schemes: int) -> tuple[int, int]:
    """(columns a row, a column's width in px): figure heights follow the width, so square plots fill their
    column without blank bands; at most ROW_SCHEMES a row, so a 15 x 15 covariance, the colour bars and
    the headers keep room."""
    per_row = min(ROW_SCHEMES, n_schemes)
    return per_row, min(MAX_WIDTH, (MAIN_WIDTH - GAP * (per_row - 1)) // per_row)


@dataclass(frozen=True)
class ColumnLayout:
    """The sizes and titles of one column's figures (filter grid, covariance pair, spectrum)."""

    grid_columns: int
    grid_height: int
    grid_title: str
    pair_height: int
    pair_panel_px: int
    spectrum_height: int
    spectrum_title: str


def column_layout(width: int, k: int, n_show: int, n_sample: int) -> ColumnLayout:
    grid_columns = math.ceil(math.sqrt(n_show))
    return ColumnLayout(
        grid_columns=grid_columns,
        grid_height=int((width - 20) * math.ceil(n_show / grid_columns) / grid_columns) + 98,
        grid_title=f"{n_show} filter{'s' if n_show > 1 else ''}, {k} × {k}",
        pair_height=int((width - 20) * 0.47) + 118,
        # each panel drew 89 px wide in a 252 px column (Chromium, 1280 px window): an image no larger
        # keeps every one-pixel diagonal dot
        pair_panel_px=int((width - 20) * 0.47 * 0.8),
        spectrum_height=width + 70,
        spectrum_title=f"Mean |FFT| of {min(n_sample, SPECTRUM_FILTERS):,} filters")


def upload_caption(name: str, description: str, kernel_size: int, k: int) -> str:
    """What an uploaded covariance is, and that it is sampled at the gallery's k when that differs."""
    resized = f" Sampled at k = {k}, resized as a learned covariance is." if kernel_size != k else ""
    return f"{name}: {description}.{resized}"
