"""Plotly figure builders used by the app pages and the CLI (plotly only, no streamlit).

Modules: covariance (covariance matrices and their blocks, factors, eigenvalues), filters (sampled
filters and their spectrum), curves (training curves, final accuracies), learned (learned covariances
layer by layer), analysis (patch matrices, eigenfilters, feature maps, spectra), attention, claims,
sweep, rfm; style (shared colours, colour bars and layout) and matrix_image (large matrices as PNG
images) hold the common parts.
"""

from .covariance import (
    block_figure,
    covariance_figure,
    covariance_pair_figure,
    depth_figure,
    eigenvalue_figure,
    factor_figure,
    outline_block,
)
from .filters import filter_grid_figure, spectrum_figure

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
