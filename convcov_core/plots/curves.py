"""Plotly figures of training: loss and test-accuracy curves of runs, final accuracy per variant (no streamlit).

Curves are objects with group, seed, steps, losses, epochs, test_acc and label (lab.Curve): one
colour per group (a variant, or "#id variant" in history overlays), one line per seed.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from .style import BOTTOM_LEGEND, finish_figure

PALETTE = qualitative.D3
#: Most points drawn per loss curve; longer curves are averaged over equal buckets of steps.
MAX_POINTS = 600


def group_colours(groups) -> dict[str, str]:
    """One palette colour per group, in order of first appearance."""
    colours: dict[str, str] = {}
    for g in groups:
        if g not in colours:
            colours[g] = PALETTE[len(colours) % len(PALETTE)]
    return colours


def thin(xs, ys, max_points: int = MAX_POINTS) -> tuple[list, list]:
    """At most max_points (x, y) pairs: bucket means of consecutive points (None values skipped)."""
    if len(xs) <= max_points:
        return list(xs), list(ys)
    edges = np.linspace(0, len(xs), max_points + 1).astype(int)
    x_out, y_out = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        vals = [v for v in ys[a:b] if v is not None]
        x_out.append(float(np.mean(xs[a:b])))
        y_out.append(float(np.mean(vals)) if vals else None)
    return x_out, y_out


def _curve_traces(fig: go.Figure, curves, x_of, y_of, mode: str, hover: str) -> None:
    colours = group_colours(c.group for c in curves)
    shown = set()
    for c in curves:
        x, y = x_of(c), y_of(c)
        if not x:
            continue
        fig.add_trace(go.Scatter(
            x=x, y=y, mode=mode, name=c.group, legendgroup=c.group, showlegend=c.group not in shown,
            line=dict(color=colours[c.group], width=1.5), marker=dict(size=7, color=colours[c.group]),
            hovertemplate=f"{c.label}<br>{hover}<extra></extra>"))
        shown.add(c.group)


def loss_figure(curves, *, title: str = "Training loss per step", height: int = 380) -> go.Figure:
    """Training loss against the step of each run, one colour per variant."""
    fig = go.Figure()
    _curve_traces(fig, curves, lambda c: thin(c.steps, c.losses)[0], lambda c: thin(c.steps, c.losses)[1],
                  "lines", "step %{x:.0f}: loss %{y:.3f}")
    if not fig.data:
        fig.add_annotation(text="waiting for the first steps…", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(title_text="loss (cross-entropy)", rangemode="tozero")
    fig.update_layout(legend=BOTTOM_LEGEND)
    return finish_figure(fig, title, height).update_layout(margin=dict(b=100))


def accuracy_figure(curves, *, title: str = "Test accuracy per epoch", height: int = 380) -> go.Figure:
    """Test accuracy (%) after each epoch of each run, one colour per variant."""
    fig = go.Figure()
    _curve_traces(fig, curves, lambda c: c.epochs, lambda c: c.test_acc, "lines+markers",
                  "epoch %{x}: %{y:.1f}%")
    if not fig.data:
        fig.add_annotation(text="the first point appears after the first epoch", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
    epochs = max((e for c in curves for e in c.epochs), default=1)
    fig.update_xaxes(title_text="epoch", range=[0.5, epochs + 0.5], dtick=max(1, math.ceil(epochs / 10)))
    fig.update_yaxes(title_text="test accuracy (%)", range=[0, 100])
    fig.update_layout(legend=BOTTOM_LEGEND)
    return finish_figure(fig, title, height).update_layout(margin=dict(b=100))


def results_figure(rows: list[dict], seeds: list, *, height: int = 300) -> go.Figure:
    """Final test accuracy per variant: one dot per seed, a bar for the mean with ± std (the
    `rows` of a ComparisonResult)."""
    colours = group_colours(r["variant"] for r in rows)
    fig = go.Figure()
    for r in rows:
        name, colour = r["variant"], colours[r["variant"]]
        if r["mean"] is not None:
            fig.add_trace(go.Bar(
                x=[name], y=[r["mean"]], marker_color=colour, opacity=0.35, showlegend=False,
                error_y=dict(type="data", array=[r["std"] or 0], visible=r["std"] is not None),
                hovertemplate=f"{name}: mean %{{y:.2f}}%<extra></extra>"))
        acc = [(s, r["per_seed"].get(s)) for s in seeds if r["per_seed"].get(s) is not None]
        fig.add_trace(go.Scatter(
            x=[name] * len(acc), y=[a for _, a in acc], mode="markers", showlegend=False,
            marker=dict(size=10, color=colour, line=dict(width=1, color="#333")),
            customdata=[s for s, _ in acc],
            hovertemplate=f"{name}, seed %{{customdata}}: %{{y:.2f}}%<extra></extra>"))
    fig.update_yaxes(title_text="final test accuracy (%)", range=[0, 100])
    return finish_figure(fig, "Final test accuracy", height)
