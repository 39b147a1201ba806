"""Plotly figures of sampled filters themselves: a mosaic of the filters and their mean spectrum."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch

from .matrix_image import HEATMAP_MAX_CELLS, image_trace
from .style import (
    DIVERGING,
    SEQUENTIAL,
    colourbar,
    colourbar_trace,
    finish_figure,
    place_bar_below,
    square_axes,
    to_numpy,
)


def filter_mosaic(f: np.ndarray, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Filters (N, k, k) laid out `cols` wide with one blank (NaN) row/column between them, and for
    each cell (filter number from 1, row, column) of the filter pixel it shows (-1 in the gaps)."""
    n, k, _ = f.shape
    rows = math.ceil(n / cols)
    pitch = k + 1  # one blank row/column between filters
    mosaic = np.full((rows * pitch - 1, cols * pitch - 1), np.nan)
    info = np.full(mosaic.shape + (3,), -1, dtype=np.int16)
    for idx in range(n):
        r0, c0 = (idx // cols) * pitch, (idx % cols) * pitch
        mosaic[r0:r0 + k, c0:c0 + k] = f[idx]
        li, lj = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        info[r0:r0 + k, c0:c0 + k] = np.stack([np.full_like(li, idx + 1), li, lj], axis=-1)
    return mosaic, info


def filter_grid_figure(filters, *, columns: int | None = None, title: str = "", height: int = 400,
                       max_cells: int = HEATMAP_MAX_CELLS) -> go.Figure:
    """Filters (N, k, k) as a mosaic (`columns` wide, default a square-ish ceil(sqrt(N))) on one
    diverging colour scale centred on 0 shared by all filters shown; hover gives the filter number,
    pixel and weight."""
    f = to_numpy(torch.as_tensor(filters, dtype=torch.float64))
    if f.ndim != 3 or f.shape[0] == 0:
        raise ValueError(f"filters must have shape (N, k, k) with N >= 1, got {f.shape}")
    n = f.shape[0]
    mosaic, info = filter_mosaic(f, min(columns or math.ceil(math.sqrt(n)), n))
    top = float(np.nanmax(np.abs(mosaic))) or 1.0
    fig = go.Figure()
    if mosaic.size <= max_cells:
        fig.add_trace(go.Heatmap(
            z=mosaic, zmin=-top, zmax=top, colorscale=DIVERGING, customdata=info, hoverongaps=False,
            colorbar=colourbar("weight", below=True),
            hovertemplate="filter %{customdata[0]}, pixel (%{customdata[1]}, %{customdata[2]})"
                          "<br>weight %{z:.4g}<extra></extra>",
        ))
    else:
        fig.add_trace(image_trace(mosaic, -top, top, DIVERGING))
        fig.add_trace(colourbar_trace(-top, top, DIVERGING, colourbar("weight", below=True)))
    fig.update_xaxes(showticklabels=False, ticks="")
    fig.update_yaxes(showticklabels=False, ticks="")
    square_axes(fig)
    fig = finish_figure(fig, title, height).update_layout(margin=dict(l=10, r=10, t=40))
    return place_bar_below(fig, gap_px=8)


def spectrum_figure(spectrum, *, title: str = "Mean |FFT| of the filters", height: int = 330) -> go.Figure:
    """A centred size x size magnitude spectrum (DC in the middle) on frequency axes in cycles/pixel."""
    spec = to_numpy(torch.as_tensor(spectrum, dtype=torch.float64))
    size = spec.shape[0]
    freq = (np.arange(size) - size // 2) / size
    fig = go.Figure(go.Heatmap(
        z=spec, x=freq, y=freq, colorscale=SEQUENTIAL, zmin=0, zmax=float(spec.max()) or 1.0,
        colorbar=colourbar("|FFT|", below=True),
        hovertemplate="u = %{x:.3f}, v = %{y:.3f} cycles/pixel<br>|FFT| %{z:.4g}<extra></extra>",
    ))
    fig.update_xaxes(title_text="u (cycles/pixel)", constrain="domain")
    fig.update_yaxes(title_text="v (cycles/pixel)", scaleanchor="x", constrain="domain")
    return place_bar_below(finish_figure(fig, title, height), gap_px=60)
