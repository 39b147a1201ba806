"""Plotly figures of learned covariances, layer by layer (no streamlit): fitted σ against depth, every
layer's covariance, its average by pixel offset, one layer beside the closed form that fits it.

Learned covariances are shown scaled to unit mean diagonal, so layers whose filters grew or shrank
during training share one colour scale and compare with the closed form exp(-d^2 / 2 sigma^2) directly.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..covariance import normalize_trace, to_tiled
from .covariance import overview_panels, pixel_pairs
from .matrix_image import HEATMAP_MAX_CELLS, image_grid_figure, image_trace
from .style import (
    BOTTOM_LEGEND,
    DIVERGING,
    colourbar,
    colourbar_trace,
    finish_figure,
    robust_colour_range,
    robust_limit,
    saturation_note,
    small_multiples,
)


def sigma_depth_figure(fits: list[dict], schedule: list[float], *, fitted_line=None,
                       height: int = 360) -> go.Figure:
    """Fitted sigma per layer (marker colour: the fit's r) beside the closed-form schedule the
    Gaussian init uses, and optionally the straight line through the fitted values."""
    layers = [f["layer"] for f in fits]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=list(range(1, len(schedule) + 1)), y=schedule, mode="lines", name="closed-form schedule (init)",
        line=dict(color="#888", dash="dash"), hovertemplate="layer %{x}: σ = %{y:.2f}<extra></extra>"))
    if fitted_line is not None:
        first, last = fitted_line
        n = len(fits)
        xs = list(range(1, n + 1))
        ys = [first + (last - first) * i / (n - 1) if n > 1 else first for i in range(n)]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"straight line: {first:.2f} → {last:.2f}",
                                 line=dict(color="#ff7f0e", width=1.5),
                                 hovertemplate="layer %{x}: σ = %{y:.2f}<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=layers, y=[f["sigma"] for f in fits], mode="lines+markers", name="fitted σ of the learned layer",
        line=dict(color="#1f77b4"),
        marker=dict(size=11, color=[f["r"] for f in fits], colorscale="Viridis", cmin=0, cmax=1,
                    line=dict(width=1, color="#333"), colorbar=dict(title=dict(text="r", side="right"),
                                                                    thickness=10, len=0.7)),
        customdata=[f["r"] for f in fits],
        hovertemplate="layer %{x}: fitted σ = %{y:.2f} (r = %{customdata:.2f})<extra></extra>"))
    fig.update_xaxes(title_text="layer (depth)", dtick=1 if len(layers) <= 16 else None)
    fig.update_yaxes(title_text="σ (pixels)", rangemode="tozero")
    fig.update_layout(legend=BOTTOM_LEGEND)
    return finish_figure(fig, "Fitted σ against depth", height).update_layout(margin=dict(b=110))


def layer_grid_figure(covariances, titles: list[str], *, columns: int = 4, panel_side: int = 300,
                      panel_height: int = 210) -> go.Figure:
    """Small multiples: each layer's covariance (unit mean diagonal) as an image on one shared
    colour scale, titled by `titles`: tiled with lines between tiles, or above k = 15 the centre
    pixel's block (covariance.overview_panels). A few entries that dwarf the rest (a NIFF layer's
    centre-pixel variance) saturate the scale instead of setting it (style.robust_colour_range)."""
    covariances = list(covariances)
    if not covariances or len(titles) != len(covariances):
        raise ValueError("need at least one covariance and one title per covariance")
    normalized = [normalize_trace(torch.as_tensor(S, dtype=torch.float64)) for S in covariances]
    panels, tile_k = overview_panels(normalized, panel_side)
    return image_grid_figure(panels, titles, columns=columns, bar_title="covariance / mean variance",
                             panel_height=panel_height, tile_k=tile_k, robust=True)


def offset_profile_figure(profiles, titles: list[str], *, columns: int = 6,
                          panel_height: int = 200) -> go.Figure:
    """Small multiples of each layer's average covariance by pixel offset (learned_sets.offset_profile),
    (2k - 1) x (2k - 1) heatmaps on one scale centred on 0 with the variance at 1."""
    profiles = [np.asarray(p, dtype=np.float64) for p in profiles]
    if not profiles or len(titles) != len(profiles):
        raise ValueError("need at least one profile and one title per profile")
    n = profiles[0].shape[0]
    half = n // 2
    offsets = list(range(-half, half + 1))
    top = max(1.0, max(float(np.abs(p).max()) for p in profiles))
    fig, cells = small_multiples(titles, columns)
    for i, (p, where) in enumerate(zip(profiles, cells)):
        fig.add_trace(go.Heatmap(
            z=p.astype(np.float32), x=offsets, y=offsets, zmin=-top, zmax=top, colorscale=DIVERGING,
            showscale=i == 0, colorbar=colourbar("covariance / variance"),
            hovertemplate="offset (%{y}, %{x}): %{z:.3f}<extra></extra>"), **where)
        fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, constrain="domain", **where)
        fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, autorange="reversed",
                         constrain="domain", scaleanchor=f"x{'' if i == 0 else i + 1}", **where)
    fig.update_annotations(font=dict(size=11))
    fig = finish_figure(fig, "", panel_height * cells[-1]["row"] + 40)
    return fig.update_layout(margin=dict(l=10, r=10, t=30, b=10))


def closed_form_figure(learned, closed, difference, *, sigma: float, r: float, layer: str,
                       height: int = 470, max_cells: int = HEATMAP_MAX_CELLS) -> go.Figure:
    """Learned covariance, the closed form at its fitted sigma (both unit mean diagonal, one colour
    scale, bar under them) and their difference (own diverging scale, bar under it), tiled; a few
    entries that dwarf the rest saturate the scales (style.robust_limit)."""
    L, C, D = (to_tiled(torch.as_tensor(M, dtype=torch.float64)).numpy()
               for M in (learned, closed, difference))
    k = int(round(math.sqrt(L.shape[0])))
    zmin, zmax, scale, clipped = robust_colour_range(np.stack([L, C]))
    top, top_clipped = robust_limit(D)
    top = top or 1.0
    titles = [f"learned ({layer})", f"closed form at the fitted σ = {sigma:.2f}",
              f"learned − closed form (r = {r:.2f})"]
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.03, subplot_titles=titles)
    shared_bar = dict(title=dict(text="covariance / mean variance" + saturation_note(clipped), side="top"),
                      orientation="h", thickness=10, len=0.6, x=0.33, xanchor="center", y=-0.04, yanchor="top")
    diff_bar = dict(title=dict(text="difference" + saturation_note(top_clipped), side="top"), orientation="h",
                    thickness=10, len=0.3, x=0.84, xanchor="center", y=-0.04, yanchor="top")
    panels = ((1, L, zmin, zmax, scale, None), (2, C, zmin, zmax, scale, shared_bar),
              (3, D, -top, top, DIVERGING, diff_bar))
    pairs = pixel_pairs(k, "tiled") if L.size <= max_cells else None
    for col, z, lo, hi, cs, bar in panels:
        if pairs is not None:
            fig.add_trace(go.Heatmap(
                z=z.astype(np.float32), zmin=lo, zmax=hi, colorscale=cs, customdata=pairs,
                showscale=bar is not None, colorbar=bar,
                hovertemplate="pixel (%{customdata[0]}, %{customdata[1]}) with "
                              "(%{customdata[2]}, %{customdata[3]})<br>%{z:.3g}<extra></extra>"),
                row=1, col=col)
        else:
            fig.add_trace(image_trace(z, lo, hi, cs, max_side=480), row=1, col=col)
            if bar is not None:
                fig.add_trace(colourbar_trace(lo, hi, cs, bar))
    for col in (1, 2, 3):
        fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, constrain="domain",
                         row=1, col=col)
        fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, autorange="reversed",
                         scaleanchor=f"x{'' if col == 1 else col}", constrain="domain", row=1, col=col)
    fig.update_annotations(font=dict(size=13))
    fig = finish_figure(fig, "", height)
    return fig.update_layout(margin=dict(l=10, r=10, t=40, b=80))
