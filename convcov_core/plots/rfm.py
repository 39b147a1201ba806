"""Plotly figure of seed 001's Figure 5 as convcov measured it: test accuracy against background noise
for the four models of convcov_core.rfm.experiment, mean and 95% interval over seeds."""

from __future__ import annotations

import plotly.graph_objects as go

from .style import finish_figure

COLOURS = {"base kernel": "#aaaaaa", "ConvRFM": "#1f77b4", "Deep ConvRFM": "#2ca02c", "CNN": "#d62728"}


def accuracy_figure(summary: list[dict], *, title: str = "", height: int = 380) -> go.Figure:
    """One line per model through its mean test accuracy at each noise level, error bars to the ends
    of the 95% interval (summary: NoiseSweep.summary() rows, or the "summary" of its JSON)."""
    if not summary:
        raise ValueError("the sweep summary is empty")
    fig = go.Figure()
    for model, colour in COLOURS.items():
        rows = sorted((r for r in summary if r["model"] == model), key=lambda r: r["noise"])
        upper = [None if r["high"] is None else r["high"] - r["mean"] for r in rows]
        lower = [None if r["low"] is None else r["mean"] - r["low"] for r in rows]
        fig.add_trace(go.Scatter(
            x=[r["noise"] for r in rows], y=[r["mean"] for r in rows], name=model, mode="lines+markers",
            line=dict(color=colour), error_y=dict(type="data", array=upper, arrayminus=lower, visible=True),
            hovertemplate=f"{model}<br>noise %{{x}}: %{{y:.1f}}%<extra></extra>"))
    fig.update_xaxes(title_text="background noise (std)")
    fig.update_yaxes(title_text="test accuracy (%)")
    fig.update_layout(legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    return finish_figure(fig, title, height)
