"""Figures of a sweep (plotly only, no streamlit): the paired effect of a scheme per cell as a
heatmap over two axes, the same effect as lines with 95% error bars against a third axis, and the
grid of cells filling in while the sweep runs.

Effects are rows of sweep.cell_effects (diff_mean, diff_low, diff_high in points, n, winner,
seeds_needed, and where known map_side and wider_than_map) for one scheme; axis values are shown
as they are in the table (str(value)), in the order they first appear. Cells sit at whole-number
positions with the values as tick labels, so every grid has evenly spaced cells whatever its
values. A cell whose filters are wider than their feature map (wider_than_map, k > map) is
marked: "k > map" in its text and an open square in its corner on the heatmap, an open marker on
the lines, and a line of its hover on both.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .curves import group_colours
from .style import DIVERGING, finish_figure

MINUS = "\u2212"
#: Most columns whose cells still show the interval under the mean (wider grids: the mean only).
INTERVAL_COLUMNS = 6
PROGRESS_SCALE = [[0.0, "#f0f0f0"], [1.0, "#41ab5d"]]
_LEGEND = dict(orientation="h", y=-0.25, yanchor="top", x=0, xanchor="left")
#: The mark of a cell whose k x k filters are wider than their n x n feature map.
WIDE_MARK = "k > map"
WIDE_LEGEND = f"{WIDE_MARK}: filters wider than their feature map"


def signed(value, digits: int = 1) -> str:
    """'+1.2' / '−0.3' (a true minus sign); '' for None or NaN."""
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:+.{digits}f}".replace("-", MINUS)


def effect_text(row, with_interval: bool = True) -> str:
    """A cell's label: the mean difference, and its 95% interval on a second line when known."""
    text = signed(row["diff_mean"])
    if with_interval and _finite(row["diff_low"]):
        text += f"<br>[{signed(row['diff_low'])}, {signed(row['diff_high'])}]"
    return text


def axis_values(table: pd.DataFrame, axis: str | None) -> list:
    """The axis's values in the order they first appear ([None] without an axis)."""
    return [None] if axis is None else list(dict.fromkeys(table[axis]))


def colour_ticks(top: float) -> tuple[list[float], list[str]]:
    """Ticks for a colour bar from -top to +top (5 or 7): multiples of the largest round step (1, 2,
    2.5 or 5 x 10^k) up to top / 2, labelled with as many decimals as the step has, so no two
    labels are equal."""
    half = top / 2
    power = 10.0 ** math.floor(math.log10(half))
    step = next(m * power for m in (5, 2.5, 2, 1) if m * power <= half * 1.000001)
    digits = next(d for d in range(12) if abs(round(step, d) - step) <= 1e-9 * step)
    count = math.floor(top / step + 1e-9)
    values = [round(k * step, digits) for k in range(-count, count + 1)]
    return values, [signed(v, digits) if v else "0" for v in values]


def _finite(value) -> bool:
    return value is not None and pd.notna(value) and math.isfinite(value)


def wider_than_map(row) -> bool:
    """Whether an effects row is a cell marked wider_than_map (False where the column is missing or empty)."""
    value = row.get("wider_than_map")
    return value is not None and not pd.isna(value) and bool(value)


def _map_hover(row) -> str:
    side = row.get("map_side")
    where = f"its {int(side)} x {int(side)} feature map" if _finite(side) else "its feature map"
    return f"{WIDE_MARK}: filters wider than {where}; weights beyond it only meet padding"


def _title(titles: dict | None, axis: str | None) -> str:
    return "" if axis is None else (titles or {}).get(axis, axis)


def _cell_axes(fig: go.Figure, xs: list, ys: list, x_title: str, y_title: str) -> None:
    """Whole-number cell positions labelled by the axes' values, first row on top, no grid."""
    fig.update_xaxes(title_text=x_title, tickvals=list(range(len(xs))), ticktext=[str(v) for v in xs],
                     range=[-0.5, len(xs) - 0.5], showgrid=False, zeroline=False)
    fig.update_yaxes(title_text=y_title, tickvals=list(range(len(ys))),
                     ticktext=["" if v is None else str(v) for v in ys],
                     range=[len(ys) - 0.5, -0.5], showgrid=False, zeroline=False)


def _cell_height(n_rows: int, row_px: int) -> int:
    return 130 + n_rows * row_px


def _grid(table: pd.DataFrame, x: str, y: str | None, column: str) -> np.ndarray:
    """table[column] laid out as rows (y values) x columns (x values); NaN where no row."""
    xs, ys = axis_values(table, x), axis_values(table, y)
    grid = np.full((len(ys), len(xs)), np.nan)
    for _, row in table.iterrows():
        if _finite(row[column]):
            grid[ys.index(None if y is None else row[y]), xs.index(row[x])] = row[column]
    return grid


def _check_cells(effects: pd.DataFrame, axes: list) -> None:
    if effects.empty:
        raise ValueError("no cells to draw")
    if effects.duplicated(subset=axes).any():
        raise ValueError(f"more than one row per cell of {', '.join(axes)}: draw one scheme, and fix "
                         "every other axis to one value")


def effect_heatmap(effects: pd.DataFrame, x: str, y: str | None = None, *, titles: dict | None = None,
                   bar_title: str = "difference (points)", height: int | None = None) -> go.Figure:
    """Colour: diff_mean per (x, y) cell on a diverging scale centred at 0; text: the mean and its
    95% interval (the mean only on grids wider than INTERVAL_COLUMNS); a star on cells with a
    winner; cells wider_than_map marked (WIDE_MARK under the mean on grids that show intervals, and an
    open square in the corner with a legend entry). One row per cell: one scheme, every other axis
    fixed. `titles`: axis -> axis title."""
    _check_cells(effects, [a for a in (x, y) if a is not None])
    xs, ys = axis_values(effects, x), axis_values(effects, y)
    z = _grid(effects, x, y, "diff_mean")
    finite = z[np.isfinite(z)]
    top = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    tick_values, tick_text = colour_ticks(top)
    wide = len(xs) > INTERVAL_COLUMNS
    text = np.full(z.shape, "", dtype=object)
    hover = np.full(z.shape, "no paired seeds yet", dtype=object)
    stars, marked = [], []
    for _, row in effects.iterrows():
        j, i = ys.index(None if y is None else row[y]), xs.index(row[x])
        text[j, i] = effect_text(row, with_interval=not wide)
        hover[j, i] = _effect_hover(row)
        if isinstance(row["winner"], str):
            stars.append((i, j, row["winner"]))
        if wider_than_map(row):
            marked.append((i, j, _map_hover(row)))
            text[j, i] += "" if wide else f"<br><i>{WIDE_MARK}</i>"
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(len(xs))), y=list(range(len(ys))), zmin=-top, zmax=top, colorscale=DIVERGING,
        text=text, texttemplate="%{text}", textfont=dict(size=_text_size(len(xs))), customdata=hover,
        hovertemplate="%{customdata}<extra></extra>", xgap=2, ygap=2,
        colorbar=dict(title=dict(text=bar_title, side="right"), thickness=12, tickvals=tick_values,
                      ticktext=tick_text)))
    fig.add_trace(go.Scatter(
        x=[i + 0.36 for i, _, _ in stars], y=[j - 0.3 for _, j, _ in stars], mode="markers", name="winner",
        marker=dict(symbol="star", size=11, color="#222"), showlegend=False,
        customdata=[w for *_, w in stars], hovertemplate="winner: %{customdata}<extra></extra>"))
    if marked:
        fig.add_trace(go.Scatter(
            x=[i - 0.36 for i, _, _ in marked], y=[j - 0.3 for _, j, _ in marked], mode="markers", name=WIDE_LEGEND,
            marker=dict(symbol="square-open", size=10, color="#222", line=dict(width=2)), showlegend=True,
            customdata=[h for *_, h in marked], hovertemplate="%{customdata}<extra></extra>"))
    _cell_axes(fig, xs, ys, _title(titles, x), _title(titles, y))
    fig = finish_figure(fig, "", (height or _cell_height(len(ys), 48 if wide else 64)) + (30 if marked else 0))
    legend = dict(orientation="h", y=1.0, yanchor="bottom", x=0, xanchor="left")
    return fig.update_layout(margin=dict(t=50 if marked else 20), plot_bgcolor="#f6f6f6", legend=legend)


def _text_size(n_columns: int) -> int:
    """Cell text in points: larger in the big cells of small grids."""
    return 14 if n_columns <= 4 else 12 if n_columns <= INTERVAL_COLUMNS else 10


def _effect_hover(row) -> str:
    lines = [f"difference {signed(row['diff_mean'], 2)} points"]
    if _finite(row["diff_low"]):
        lines.append(f"95% interval [{signed(row['diff_low'], 2)}, {signed(row['diff_high'], 2)}]")
    lines.append(f"{row['n']} paired seed(s)")
    if _finite(row["seeds_needed"]):
        lines.append(f"{int(row['seeds_needed'])} seeds resolve this effect at this spread")
    if wider_than_map(row):
        lines.append(_map_hover(row))
    return "<br>".join(lines)


def effect_lines(effects: pd.DataFrame, x: str, line: str | None = None, facet: str | None = None, *,
                 titles: dict | None = None, y_title: str = "difference (points)",
                 height: int = 380) -> go.Figure:
    """diff_mean against the values of `x` with its 95% interval as error bars, one line per value
    of `line`, one panel per value of `facet` side by side (shared y axis), a dashed zero line.
    One row per point: one scheme, every other axis fixed. Points of cells wider_than_map are open
    markers."""
    _check_cells(effects, [a for a in (x, line, facet) if a is not None])
    xs, lines, facets = axis_values(effects, x), axis_values(effects, line), axis_values(effects, facet)
    panel_titles = [f"{_title(titles, facet)}: {v}" for v in facets] if facet else None
    fig = make_subplots(rows=1, cols=len(facets), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=panel_titles)
    colours = group_colours(str(v) for v in lines)
    for col, facet_value in enumerate(facets, start=1):
        panel = effects if facet is None else effects[effects[facet] == facet_value]
        for n, line_value in enumerate(lines):
            points = panel if line is None else panel[panel[line] == line_value]
            fig.add_trace(_line_trace(points, x, xs, str(line_value), colours.get(str(line_value)),
                                      _dodge(n, len(lines)), show=line is not None and col == 1),
                          row=1, col=col)
        fig.add_hline(y=0, line=dict(color="#888", dash="dash", width=1), row=1, col=col)
        fig.update_xaxes(title_text=_title(titles, x), tickvals=list(range(len(xs))),
                         ticktext=[str(v) for v in xs], range=[-0.5, len(xs) - 0.5], row=1, col=col)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_layout(legend=dict(_LEGEND, title=dict(text=_title(titles, line))))
    fig.update_annotations(font=dict(size=12))
    fig = finish_figure(fig, "", height)
    return fig.update_layout(margin=dict(t=40 if facet else 20, b=110 if line else 50))


def _dodge(n: int, count: int) -> float:
    """Horizontal offset of line n of count, so error bars at one x do not hide each other."""
    return 0.0 if count == 1 else (n - (count - 1) / 2) * min(0.3 / (count - 1), 0.1)


def _line_trace(points: pd.DataFrame, x: str, xs: list, name: str, colour: str | None, offset: float,
                show: bool) -> go.Scatter:
    means = [row["diff_mean"] if _finite(row["diff_mean"]) else None for _, row in points.iterrows()]
    up = [row["diff_high"] - row["diff_mean"] if _finite(row["diff_high"]) else 0 for _, row in points.iterrows()]
    down = [row["diff_mean"] - row["diff_low"] if _finite(row["diff_low"]) else 0 for _, row in points.iterrows()]
    return go.Scatter(
        x=[xs.index(v) + offset for v in points[x]], y=means, mode="lines+markers", name=name,
        legendgroup=name, showlegend=show, line=dict(color=colour, width=2),
        marker=dict(size=8, color=colour, symbol=["circle-open" if wider_than_map(row) else "circle"
                                                  for _, row in points.iterrows()], line=dict(width=2)),
        error_y=dict(type="data", symmetric=False, array=up, arrayminus=down, thickness=1.5, width=4),
        customdata=[_effect_hover(row) for _, row in points.iterrows()],
        hovertemplate=f"{name}<br>%{{customdata}}<extra></extra>")


def progress_grid(counts: pd.DataFrame, axes: list[str], *, titles: dict | None = None) -> go.Figure:
    """The sweep's cells, coloured by the share of their trials finished, each labelled
    "finished/total" (and the failed count). Columns: the last axis; rows: the other axes' values
    together. `counts`: one row per cell with the axis columns, n_finished, n_total, n_failed."""
    x = axes[-1] if axes else None
    rows = counts.assign(_row=[" · ".join(f"{_title(titles, a)} {r[a]}" for a in axes[:-1])
                               for _, r in counts.iterrows()], _col=counts[x] if x else "")
    xs, ys = axis_values(rows, "_col"), axis_values(rows, "_row")
    share = np.full((len(ys), len(xs)), np.nan)
    text = np.full(share.shape, "", dtype=object)
    hover = np.full(share.shape, "", dtype=object)
    for _, row in rows.iterrows():
        j, i = ys.index(row["_row"]), xs.index(row["_col"])
        share[j, i] = row["n_finished"] / row["n_total"]
        failed = f", {row['n_failed']} failed" if row["n_failed"] else ""
        text[j, i] = f"{row['n_finished']}/{row['n_total']}" + failed.replace(", ", "<br>")
        hover[j, i] = f"{row['n_finished']} of {row['n_total']} trials finished{failed}"
    fig = go.Figure(go.Heatmap(
        z=share, x=list(range(len(xs))), y=list(range(len(ys))), zmin=0, zmax=1, colorscale=PROGRESS_SCALE,
        showscale=False, text=text, texttemplate="%{text}", textfont=dict(size=11), xgap=2, ygap=2,
        customdata=hover, hovertemplate="%{customdata}<extra></extra>"))
    _cell_axes(fig, xs, ys, _title(titles, x), "")
    fig = finish_figure(fig, "", _cell_height(len(ys), 34))
    return fig.update_layout(margin=dict(t=20, l=60 + 6 * max(len(str(v)) for v in ys)))
