"""The look every figure shares: colour scales and ranges, colour bars, square matrix axes, the
title and margins, lines between tiles, and grids of small multiples (plotly only)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"
_FONT = dict(size=12)


def to_numpy(x) -> np.ndarray:
    """A tensor (detached, on the CPU) or array-like as a numpy array."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def colour_range(values) -> tuple[float, float, str]:
    """(zmin, zmax, colorscale): [0, max] on a sequential scale for non-negative values, else a
    diverging scale centred on 0 with limits +-max|value|."""
    v = to_numpy(values)
    finite = v[np.isfinite(v)]
    top = float(np.abs(finite).max()) if finite.size else 1.0
    top = top if top > 0 else 1.0
    if finite.size and finite.min() >= 0:
        return 0.0, top, SEQUENTIAL
    return -top, top, DIVERGING


def colourbar(title: str, *, below: bool = False) -> dict:
    """Colour bar settings: a thin bar on the right, or a horizontal bar under the plot (for
    square plots in narrow columns, where a side bar takes a third of the width);
    `place_bar_below` puts it at a fixed distance in pixels once the figure's height is known."""
    if below:
        return dict(title=dict(text=title, side="top"), orientation="h", thickness=8, len=0.9,
                    x=0.5, xanchor="center", yanchor="top", title_font_size=11)
    return dict(title=dict(text=title, side="right"), thickness=12)


def place_bar_below(fig: go.Figure, gap_px: int) -> go.Figure:
    """Put the horizontal colour bars of a finished figure gap_px under the plot area."""
    margin = fig.layout.margin
    bottom = gap_px + 50
    plot_px = max(fig.layout.height - margin.t - bottom, 40)
    fig.update_layout(margin=dict(b=bottom))
    y = -gap_px / plot_px
    for trace in fig.data:
        bar = trace.marker.colorbar if isinstance(trace, go.Scatter) else getattr(trace, "colorbar", None)
        if bar is not None and bar.orientation == "h":
            bar.y = y
    return fig


def colourbar_trace(zmin: float, zmax: float, colorscale: str, bar: dict) -> go.Scatter:
    """An invisible trace that only draws a colour bar (images have none of their own)."""
    return go.Scatter(
        x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
        marker=dict(colorscale=colorscale, cmin=zmin, cmax=zmax, color=[zmin], showscale=True,
                    colorbar=bar),
    )


def square_axes(fig: go.Figure, x_title: str = "", y_title: str = "") -> None:
    """Matrix orientation (row 0 on top), square cells, no grid (single-plot figures)."""
    fig.update_xaxes(title_text=x_title, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(title_text=y_title, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor="x", constrain="domain")


def finish_figure(fig: go.Figure, title: str, height: int) -> go.Figure:
    """The shared title placement, height, margins, font and white background."""
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left", font=dict(size=14)),
                      height=height, margin=dict(l=60, r=20, t=50, b=50), font=_FONT,
                      plot_bgcolor="white")
    return fig


def tile_line_shapes(k: int, *, colour: str = "white", width: float = 0.6, axes: str = "") -> list[dict]:
    """Layout shapes for thin lines between the k x k tiles of a tiled view, on the subplot whose
    axes are x{axes}, y{axes}; set them all at once (fig.add_shape revalidates every shape each
    time, which takes seconds for a few subplots)."""
    n = k * k
    line = dict(color=colour, width=width)
    ref = dict(xref=f"x{axes}", yref=f"y{axes}", type="line", line=line, name="tile line")
    edges = [t * k - 0.5 for t in range(1, k)]
    return ([dict(x0=e, x1=e, y0=-0.5, y1=n - 0.5, **ref) for e in edges]
            + [dict(x0=-0.5, x1=n - 0.5, y0=e, y1=e, **ref) for e in edges])


def small_multiples(titles: list[str], columns: int, *, horizontal_spacing: float = 0.02,
                    vertical_spacing: float = 0.25) -> tuple[go.Figure, list[dict]]:
    """A grid of len(titles) titled panels, `columns` wide (fewer for fewer panels): the figure and
    each panel's dict(row=, col=). vertical_spacing is shared by all the rows together."""
    cols = min(columns, len(titles))
    rows = math.ceil(len(titles) / cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=horizontal_spacing,
                        vertical_spacing=vertical_spacing / rows, subplot_titles=titles)
    return fig, [dict(row=n // cols + 1, col=n % cols + 1) for n in range(len(titles))]
