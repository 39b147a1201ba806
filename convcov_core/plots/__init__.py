"""Plotly figure builders used by the app pages and the CLI (plotly only, no streamlit)."""

from .covariance import (
    block_figure,
    covariance_figure,
    covariance_pair_figure,
    depth_figure,
    eigenvalue_figure,
    factor_figure,
    filter_grid_figure,
    outline_block,
    spectrum_figure,
)

__all__ = [
    "block_figure",
    "covariance_figure",
    "covariance_pair_figure",
    "depth_figure",
    "eigenvalue_figure",
    "factor_figure",
    "filter_grid_figure",
    "outline_block",
    "spectrum_figure",
]
