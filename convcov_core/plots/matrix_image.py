"""Matrices too large for a JSON heatmap, drawn as one colour-mapped PNG image each (plotly only).

A k = 31 tiled covariance has 923,521 cells; sent as a PNG (area-averaged down to at most
IMAGE_MAX_SIDE pixels a side) it keeps the browser light. Hover on an image gives row and column.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import sample_colorscale

from .style import (
    TILE_LINE_GREY,
    colour_range,
    colourbar,
    colourbar_trace,
    finish_figure,
    robust_colour_range,
    saturation_note,
    small_multiples,
    tile_line_shapes,
)

#: Largest matrix (in cells) drawn as an interactive heatmap; 15^4 = a tiled covariance at k = 15.
HEATMAP_MAX_CELLS = 15**4
#: Longest side (pixels) of a matrix sent as an image; larger matrices are area-averaged down.
IMAGE_MAX_SIDE = 1024


def lookup_table(colorscale: str) -> np.ndarray:
    """256 x 3 uint8 RGB table sampled from a plotly colour scale."""
    rgb = sample_colorscale(colorscale, list(np.linspace(0.0, 1.0, 256)), colortype="tuple")
    return np.clip(np.round(np.array(rgb) * 255), 0, 255).astype(np.uint8)


def downscale(matrix: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """(matrix area-averaged so its longer side is at most max_side, cells per output pixel)."""
    side = max(matrix.shape)
    if side <= max_side:
        return matrix, 1.0
    step = side / max_side
    size = (max(1, round(matrix.shape[1] / step)), max(1, round(matrix.shape[0] / step)))
    image = Image.fromarray(np.ascontiguousarray(matrix, dtype=np.float32))
    return np.asarray(image.resize(size, Image.Resampling.BOX), dtype=np.float64), step


def png_source(matrix: np.ndarray, zmin: float, zmax: float, colorscale: str) -> str:
    """Data-URI PNG of the matrix colour-mapped onto [zmin, zmax] (NaN drawn as the midpoint)."""
    filled = np.nan_to_num(matrix, nan=(zmin + zmax) / 2)
    scaled = (filled - zmin) / max(zmax - zmin, 1e-300)
    index = np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(lookup_table(colorscale)[index]).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_trace(matrix: np.ndarray, zmin: float, zmax: float, colorscale: str,
                max_side: int = IMAGE_MAX_SIDE) -> go.Image:
    """The matrix as a colour-mapped PNG placed on the same axes as a heatmap of it would be."""
    small, step = downscale(matrix, max_side)
    return go.Image(source=png_source(small, zmin, zmax, colorscale),
                    x0=step / 2 - 0.5, dx=step, y0=step / 2 - 0.5, dy=step,
                    hovertemplate="row %{y:.0f}, column %{x:.0f}<extra></extra>")


def image_grid_figure(panels: list[np.ndarray], titles: list[str], *, columns: int, bar_title: str,
                      panel_height: int, tile_k: int | None = None, robust: bool = False) -> go.Figure:
    """Small multiples of matrices drawn as images on one shared colour scale, without ticks.
    `tile_k`: the panels are tiled views of k x k filters drawn cell for cell; grey lines then
    separate their tiles (without them the tiles of wide bumps merge into stripes). `robust`: a few
    outliers saturate instead of setting the scale (style.robust_colour_range; the bar says so)."""
    values = np.concatenate([p.ravel() for p in panels])
    zmin, zmax, scale, clipped = robust_colour_range(values) if robust else (*colour_range(values), None)
    bar_title += saturation_note(clipped)
    fig, cells = small_multiples(titles, columns)
    for z, where in zip(panels, cells):
        fig.add_trace(image_trace(z, zmin, zmax, scale), **where)
        fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, **where)
        fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, **where)
    if tile_k and all(p.shape == (tile_k * tile_k,) * 2 for p in panels):
        fig.update_layout(shapes=[shape for n in range(len(panels)) for shape in tile_line_shapes(
            tile_k, colour=TILE_LINE_GREY, width=1, axes="" if n == 0 else str(n + 1))])
    fig.update_traces(hoverinfo="skip", hovertemplate=None, selector=dict(type="image"))
    fig.add_trace(colourbar_trace(zmin, zmax, scale, colourbar(bar_title)))
    fig.update_annotations(font=dict(size=11))
    fig = finish_figure(fig, "", panel_height * cells[-1]["row"] + 40)
    return fig.update_layout(margin=dict(l=10, r=10, t=30, b=10))
