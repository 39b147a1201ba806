"""The look every figure shares: fonts and background (`TEMPLATE`), colour scales and ranges, colour
bars, square matrix axes, the title and margins, lines between tiles, and grids of small multiples
(plotly only)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"
_TEXT_GREY = "#808495"
_LINE_GREY = "#e6eaf1"
_AXIS = dict(gridcolor=_LINE_GREY, zerolinecolor=_LINE_GREY, linecolor=_LINE_GREY, tickcolor=_LINE_GREY,
             title=dict(font=dict(size=14)), automargin=True)
#: The figures' own look, close to Streamlit's light theme: its font and greys, white backgrounds,
#: its colours for traces that bring none. Figures carry it so that pages can draw them with
#: theme=None: Streamlit's theme is applied anew on every redraw, which made plotly.js recalculate
#: and re-lay-out unchanged figures (benchmarks/browser_latency.py).
TEMPLATE = go.layout.Template(layout=dict(
    font=dict(family='"Source Sans", "Source Sans Pro", sans-serif', size=12, color=_TEXT_GREY),
    title=dict(font=dict(size=14, color="#31333f", weight=600)),
    paper_bgcolor="white", plot_bgcolor="white",
    colorway=["#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1", "#ff8700", "#ffd16a",
              "#6d3fc0", "#d5dae5"],
    xaxis=dict(_AXIS, showgrid=False), yaxis=_AXIS,
    legend=dict(font=dict(color="#31333f")),
    hoverlabel=dict(bgcolor="white", bordercolor=_LINE_GREY, font=dict(color="#31333f", size=12)),
))
#: Lines between the tiles of small tiled views: grey shows on the dark and the bright end of Viridis.
TILE_LINE_GREY = "rgba(140, 140, 140, 0.9)"
#: A horizontal legend under the plot, left-aligned.
BOTTOM_LEGEND = dict(orientation="h", y=-0.3, yanchor="top", x=0, xanchor="left")


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


#: A robust colour scale ends at this quantile of |values| when the largest is over OUTLIER_FACTOR times it.
OUTLIER_QUANTILE, OUTLIER_FACTOR = 0.999, 4.0


def robust_limit(values) -> tuple[float, float | None]:
    """(max|v|, None), unless a few values dwarf the rest (a NIFF filter's centre pixel can hold half
    its variance, leaving every other entry at a scale's middle): where max|v| > OUTLIER_FACTOR x q,
    q the OUTLIER_QUANTILE quantile of |v|, (q, max|v|): a scale that ends at q, those values saturating."""
    v = np.abs(to_numpy(values))
    v = v[np.isfinite(v)]
    if not v.size:
        return 1.0, None
    top, q = float(v.max()), float(np.quantile(v, OUTLIER_QUANTILE))
    return (q, top) if q > 0 and top > OUTLIER_FACTOR * q else (top, None)


def robust_colour_range(values) -> tuple[float, float, str, float | None]:
    """colour_range ending at robust_limit: (zmin, zmax, colorscale, max|v| where it saturates, else None)."""
    zmin, zmax, scale = colour_range(values)
    top, clipped = robust_limit(values)
    return (zmin, zmax, scale, None) if clipped is None else ((0.0 if zmin == 0 else -top), top, scale, clipped)


def saturation_note(clipped: float | None) -> str:
    """What a colour bar's title adds when robust_limit clipped its scale."""
    return "" if clipped is None else f" (saturates; max {clipped:.3g})"


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


def integer_step(side: int, most: int = 10) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50 ... that puts at most `most` ticks on 0..side-1, so a
    pixel axis never shows fractional ticks (plotly picks 0.5 steps on a 3-pixel axis)."""
    steps = (m * 10**e for e in range(12) for m in (1, 2, 5))
    return next(step for step in steps if (side - 1) // step + 1 <= most)


def square_axes(fig: go.Figure, x_title: str = "", y_title: str = "", side: int | None = None) -> None:
    """Matrix orientation (row 0 on top), square cells, no grid (single-plot figures); with `side`
    (the cells per axis), whole-number ticks."""
    ticks = dict(tick0=0, dtick=integer_step(side)) if side else {}
    fig.update_xaxes(title_text=x_title, showgrid=False, zeroline=False, constrain="domain", **ticks)
    fig.update_yaxes(title_text=y_title, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor="x", constrain="domain", **ticks)


def colour_ticks(zmin: float, zmax: float, count: int = 5) -> tuple[list[float], list[str]]:
    """Tick values for a colour bar over [zmin, zmax] and their labels: the multiples of the
    smallest round step (1, 2, 2.5 or 5 x 10^e) that give at most `count` ticks, labelled exactly;
    where no step gives two, the two ends with the fewest significant digits (from 3) that tell them
    apart. Plotly's own labels can repeat ("0.0 0.0 0.0") on a short bar."""
    if not (math.isfinite(zmin) and math.isfinite(zmax)) or zmax <= zmin:
        return [zmin], [f"{zmin:.3g}"]
    power = 10.0 ** math.floor(math.log10((zmax - zmin) / max(count, 2)))
    for step in (m * power * 10**e for e in range(3) for m in (1, 2, 2.5, 5)):
        first, last = math.ceil(zmin / step - 1e-9), math.floor(zmax / step + 1e-9)
        if last - first + 1 <= count:
            break
    if last > first:
        values = [float(f"{n * step:.12g}") for n in range(first, last + 1)]
        return values, [f"{v:.12g}" for v in values]
    digits = next(d for d in range(3, 18) if f"{zmin:.{d}g}" != f"{zmax:.{d}g}")
    return [zmin, zmax], [f"{zmin:.{digits}g}", f"{zmax:.{digits}g}"]


def _bar_range(trace) -> tuple[object, tuple[float, float] | None]:
    """(the colour bar of a trace that shows one, the range it spans) or (None, None)."""
    if isinstance(trace, go.Scatter):
        marker = trace.marker
        if marker.showscale and marker.cmin is not None and marker.cmax is not None:
            return marker.colorbar, (marker.cmin, marker.cmax)
    elif isinstance(trace, go.Heatmap) and trace.showscale is not False:
        if trace.zmin is not None and trace.zmax is not None:
            return trace.colorbar, (trace.zmin, trace.zmax)
        z = np.asarray(trace.z, dtype=np.float64)
        if np.isfinite(z).any():
            return trace.colorbar, (float(np.nanmin(z)), float(np.nanmax(z)))
    return None, None


def label_colour_bars(fig: go.Figure) -> go.Figure:
    """Give every colour bar of the figure explicit ticks from `colour_ticks` (three on a
    horizontal bar, whose room is a narrow column's width; five on a vertical one)."""
    for trace in fig.data:
        bar, span = _bar_range(trace)
        if bar is not None:
            values, labels = colour_ticks(*span, count=3 if bar.orientation == "h" else 5)
            bar.update(tickmode="array", tickvals=values, ticktext=labels)
    return fig


def finish_figure(fig: go.Figure, title: str, height: int) -> go.Figure:
    """The shared look (`TEMPLATE`), title placement, height and margins; colour bars get distinct
    tick labels (`label_colour_bars`)."""
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.0, xanchor="left"),
                      height=height, margin=dict(l=60, r=20, t=50, b=50))
    return label_colour_bars(fig)


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
