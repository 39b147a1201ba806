"""Plotly figures of analyses (no streamlit): the CNFA check, patch matrices, eigenfilters, feature maps,
filter spectra, radial profiles and effective sizes.

Patch matrices (AGOP, CNFM) of a layer with one input channel are shown in the tiled view, so every
k x k tile is an image of how one patch pixel pairs with the others; with several input channels
the flat (channel, row, column) order is shown, large ones as an image.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from ..analysis import half_max_frequency
from ..covariance import to_tiled
from .matrix_image import downscale
from .style import BOTTOM_LEGEND, DIVERGING, SEQUENTIAL, colour_range, finish_figure, small_multiples, tile_line_shapes

TRAINED_COLOUR = "#1f77b4"
LEGEND_ROW_PX = 20  # one legend entry
AXIS_TITLE_PX = 56  # from the bottom of a plot to below its x-axis title
INIT_COLOUR = "#aaaaaa"
DEFAULT_INIT_COLOUR = "#d62728"  # PyTorch's default i.i.d. filters, drawn as a reference


#: Longest side of a matrix drawn cell by cell; larger ones are block-averaged down to it.
MATRIX_MAX_SIDE = 200


def _finish_with_legend_below(fig: go.Figure, title: str, height: int, entries: int,
                               legend_title: str = "") -> go.Figure:
    """finish_figure, with the legend in one column under the x-axis title; the figure grows by
    LEGEND_ROW_PX per row, so the plot keeps its height and no entry overlaps another whatever
    the width. One entry without a legend title needs no legend."""
    fig = finish_figure(fig, title, height)
    rows = entries + bool(legend_title) if entries > 1 or legend_title else 0
    if not rows:
        return fig.update_layout(showlegend=False)
    plot_px = height - fig.layout.margin.t - fig.layout.margin.b
    legend_px = LEGEND_ROW_PX * rows
    return fig.update_layout(showlegend=True, height=height + legend_px,
                             margin=dict(b=fig.layout.margin.b + legend_px + 10),
                             legend=dict(orientation="v", x=0, xanchor="left", yanchor="top",
                                         y=-AXIS_TITLE_PX / plot_px, title=dict(text=legend_title)))


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def layer_colours(n: int) -> list[str]:
    """n colours from light to dark along the sequential scale: shallow to deep layers."""
    if n == 1:
        return [TRAINED_COLOUR]
    return sample_colorscale(SEQUENTIAL, list(np.linspace(0.0, 0.85, n)))


# ---------------------------------------------------------------------------------------------
# Feature Ansatz


def cnfa_bar_figure(table: list[dict], *, height: int = 340) -> go.Figure:
    """Grouped bars per layer: r(AGOP, CNFM) after training and at initialization."""
    if not table:
        raise ValueError("the CNFA table is empty")
    layers = [row["layer"] for row in table]
    fig = go.Figure()
    for key, name, colour in (("r trained", "trained", TRAINED_COLOUR),
                              ("r at init", "at initialization", INIT_COLOUR)):
        fig.add_trace(go.Bar(
            x=layers, y=[row[key] for row in table], name=name, marker_color=colour,
            text=[f"{row[key]:.2f}" for row in table], textposition="outside",
            hovertemplate=f"%{{x}} ({name})<br>r = %{{y:.3f}}<extra></extra>"))
    low = min(0.0, *(row[k] for row in table for k in ("r trained", "r at init") if np.isfinite(row[k])))
    fig.update_yaxes(title_text="Pearson r(AGOP, CNFM)", range=[low, 1.12])
    fig.update_xaxes(title_text="conv layer")
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1,
                                                   xanchor="right"))
    return finish_figure(fig, "CNFA check per layer", height)


def _matrix_view(M, kernel_size: int, channels: int) -> tuple[np.ndarray, bool]:
    """(matrix to draw scaled to max |value| = 1, tiled?): tiled view for one input channel."""
    M = torch.as_tensor(M, dtype=torch.float64)
    top = float(M.abs().max())
    M = M / top if top > 0 else M
    if channels == 1 and M.shape[0] == kernel_size * kernel_size and kernel_size > 1:
        return _numpy(to_tiled(M)), True
    return _numpy(M), False


def matrix_pair_figure(agop, cnfm, *, kernel_size: int, channels: int, r: float,
                       height: int = 420) -> go.Figure:
    """AGOP next to CNFM of one layer, each divided by its largest |entry| (one colour scale)."""
    panels = [_matrix_view(M, kernel_size, channels) for M in (agop, cnfm)]
    tiled = panels[0][1]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=["patch-AGOP  M = WᵀGW", "CNFM  WᵀW"])
    zmin, zmax, scale = colour_range(np.stack([p for p, _ in panels]))
    side = panels[0][0].shape[0]
    for col, (z, _) in enumerate(panels, start=1):
        shown, step = downscale(z, MATRIX_MAX_SIDE)  # block averages above MATRIX_MAX_SIDE
        centres = (np.arange(shown.shape[0]) + 0.5) * step - 0.5
        where = "row %{y:.0f}, column %{x:.0f}" if step == 1 else "around row %{y:.0f}, column %{x:.0f}"
        fig.add_trace(go.Heatmap(z=shown, x=centres, y=centres, zmin=zmin, zmax=zmax, colorscale=scale,
                                 showscale=col == 2,
                                 colorbar=dict(title=dict(text="/ max", side="right"), thickness=10),
                                 hovertemplate=where + "<br>%{z:.3f}<extra></extra>"),
                      row=1, col=col)
    for col in (1, 2):
        fig.update_xaxes(showgrid=False, zeroline=False, constrain="domain", row=1, col=col,
                         range=[-0.5, side - 0.5])
        # the right panel has the same rows: its labels would only crowd the gap in a narrow window
        fig.update_yaxes(showgrid=False, zeroline=False, autorange="reversed", constrain="domain",
                         scaleanchor=f"x{'' if col == 1 else col}", showticklabels=col == 1,
                         ticks="outside" if col == 1 else "", row=1, col=col)
    if tiled:
        fig.update_layout(shapes=[shape for axes in ("", "2") for shape in tile_line_shapes(
            kernel_size, colour="rgba(0,0,0,0.3)", width=1, axes=axes)])
    fig = finish_figure(fig, f"Pearson r = {r:.3f}", height)
    return fig.update_layout(margin=dict(l=10, r=10, t=70, b=10))


def eigenfilter_figure(filters, shares, *, height: int | None = None) -> go.Figure:
    """Top eigenvectors as k x k filters in a row, each on its own diverging scale centred on 0,
    titled with its share of the trace."""
    f = _numpy(torch.as_tensor(filters, dtype=torch.float64))
    shares = _numpy(torch.as_tensor(shares, dtype=torch.float64))
    n = f.shape[0]
    fig = make_subplots(rows=1, cols=n, horizontal_spacing=0.015,
                        subplot_titles=[f"#{i + 1}: {s:.0%}" for i, s in enumerate(shares)])
    for i in range(n):
        top = float(np.abs(f[i]).max()) or 1.0
        fig.add_trace(go.Heatmap(z=f[i], zmin=-top, zmax=top, colorscale=DIVERGING, showscale=False,
                                 hovertemplate=f"eigenvector {i + 1}<br>pixel (%{{y}}, %{{x}}): "
                                               "%{z:.3f}<extra></extra>"), row=1, col=i + 1)
        axis = "" if i == 0 else str(i + 1)
        fig.update_xaxes(visible=False, constrain="domain", row=1, col=i + 1)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{axis}", constrain="domain",
                         row=1, col=i + 1)
    fig.update_annotations(font_size=11)
    fig = finish_figure(fig, "", height or int(np.clip(860 / n + 40, 110, 300)))
    return fig.update_layout(margin=dict(l=5, r=5, t=30, b=5))


def feature_map_figure(images: list[np.ndarray], maps: list[list[np.ndarray]], row_titles: list[str],
                       layer_titles: list[str], *, panel_height: int = 190) -> go.Figure:
    """One row per image: the image (grey) then its ||M^(1/2) patch|| map for each layer, every map
    scaled to its own maximum."""
    if not images or len(maps) != len(images) or len(row_titles) != len(images):
        raise ValueError("need one row of maps and one title per image")
    cols = 1 + len(layer_titles)
    titles = []
    for r, row_title in enumerate(row_titles):
        titles += [row_title] + (layer_titles if r == 0 else [""] * len(layer_titles))
    fig = make_subplots(rows=len(images), cols=cols, horizontal_spacing=0.02,
                        vertical_spacing=0.08 / max(len(images), 1), subplot_titles=titles)
    for r, (image, row_maps) in enumerate(zip(images, maps), start=1):
        panels = [(np.asarray(image), "Greys_r", "pixel")] + [(np.asarray(m), SEQUENTIAL, "‖M½ p‖")
                                                               for m in row_maps]
        for c, (z, scale, what) in enumerate(panels, start=1):
            top = float(np.abs(z).max()) or 1.0
            zmin = float(z.min()) if scale == "Greys_r" else 0.0
            fig.add_trace(go.Heatmap(z=z if scale == "Greys_r" else z / top, zmin=zmin,
                                     zmax=float(z.max()) if scale == "Greys_r" else 1.0,
                                     colorscale=scale, showscale=False,
                                     hovertemplate=f"(%{{y}}, %{{x}})<br>{what} %{{z:.3f}}<extra></extra>"),
                          row=r, col=c)
            index = (r - 1) * cols + c
            axis = "" if index == 1 else str(index)
            fig.update_xaxes(visible=False, constrain="domain", row=r, col=c)
            fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{axis}",
                             constrain="domain", row=r, col=c)
    fig.update_annotations(font_size=11)
    fig = finish_figure(fig, "", panel_height * len(images) + 30)
    return fig.update_layout(margin=dict(l=5, r=5, t=30, b=5))


# ---------------------------------------------------------------------------------------------
# Frequency view


def spectra_figure(spectra, names: list[str], *, columns: int = 4, panel_height: int = 230,
                   title: str = "Mean |FFT| spectrum") -> go.Figure:
    """Small multiples of centred mean |FFT| spectra, one per layer, frequencies in cycles/pixel,
    each on its own colour scale from 0 to its maximum."""
    spectra = [_numpy(torch.as_tensor(s, dtype=torch.float64)) for s in spectra]
    if not spectra or len(spectra) != len(names):
        raise ValueError("need one name per spectrum and at least one spectrum")
    fig, cells = small_multiples(names, columns, horizontal_spacing=0.04)
    rows, cols = cells[-1]["row"], min(columns, len(spectra))
    for n, (spec, where) in enumerate(zip(spectra, cells)):
        size = spec.shape[0]
        freq = (np.arange(size) - size // 2) / size
        fig.add_trace(go.Heatmap(z=spec / (spec.max() or 1.0), x=freq, y=freq, zmin=0, zmax=1,
                                 colorscale=SEQUENTIAL, showscale=n == 0,
                                 colorbar=dict(title=dict(text="|FFT| / max", side="right"), thickness=10),
                                 hovertemplate="u = %{x:.3f}, v = %{y:.3f} cycles/pixel<br>"
                                               "|FFT| / max %{z:.3f}<extra></extra>"), **where)
        axis = "" if n == 0 else str(n + 1)
        # tick labels on the outer panels only: all share one frequency grid, and inner labels
        # run into the next panel in a narrow window
        outer_x, outer_y = n + cols >= len(spectra), n % cols == 0
        fig.update_xaxes(constrain="domain", tickvals=[-0.25, 0, 0.25], showticklabels=outer_x,
                         ticks="outside" if outer_x else "", **where)
        fig.update_yaxes(constrain="domain", scaleanchor=f"x{axis}", tickvals=[-0.25, 0, 0.25],
                         showticklabels=outer_y, ticks="outside" if outer_y else "", **where)
    fig.update_xaxes(title_text="u (cycles/pixel)", row=rows, col=1)
    fig.update_yaxes(title_text="v", row=rows, col=1)
    fig.update_annotations(font_size=11)
    fig = finish_figure(fig, title, panel_height * rows + 70)
    return fig.update_layout(margin=dict(l=50, r=10, t=70, b=40))


WHITE_NOISE_LABEL = "PyTorch default (white noise)"


def radial_profile_figure(radii, profiles, names: list[str], *, size: int, white_noise=None,
                          height: int = 360) -> go.Figure:
    """Mean |FFT| on rings of growing frequency, one line per layer, each divided by its maximum
    and named with its half-max frequency (analysis.half_max_frequency); `white_noise` (a profile
    of i.i.d. filters) adds the flat reference as a dashed red line."""
    freq = _numpy(torch.as_tensor(radii, dtype=torch.float64)) / size
    lines = list(zip(profiles, names, layer_colours(len(names)), ["solid"] * len(names)))
    if white_noise is not None:
        lines.append((white_noise, WHITE_NOISE_LABEL, DEFAULT_INIT_COLOUR, "dash"))
    fig = go.Figure()
    for profile, name, colour, dash in lines:
        p = _numpy(torch.as_tensor(profile, dtype=torch.float64))
        half = half_max_frequency(p, size)
        fig.add_trace(go.Scatter(x=freq, y=p / (p.max() or 1.0), mode="lines",
                                 name=f"{name}: {'above 0.5' if half is None else f'{half:.2f}'}",
                                 line=dict(color=colour, dash=dash),
                                 hovertemplate=f"{name}<br>%{{x:.3f}} cycles/pixel: %{{y:.3f}}"
                                               "<extra></extra>"))
    fig.update_xaxes(title_text="radial frequency (cycles/pixel)", range=[0, 0.5])
    fig.update_yaxes(title_text="mean |FFT| / max", rangemode="tozero")
    return _finish_with_legend_below(fig, "Radial profile of the spectrum", height, len(lines),
                                     "falls to half its peak at (cycles/pixel)")


def effective_size_figure(sizes, names: list[str], *, kernel_size: int, energy: float,
                          height: int = 360) -> go.Figure:
    """Share of filters at each effective size (odd sides 1..k), grouped bars per layer."""
    sides = np.arange(1, kernel_size + 1, 2)
    fig = go.Figure()
    for s, name, colour in zip(sizes, names, layer_colours(len(names))):
        s = _numpy(torch.as_tensor(s)).astype(int)
        share = np.array([(s == side).mean() for side in sides])
        fig.add_trace(go.Bar(x=sides, y=share, name=f"{name}: {s.mean():.1f}", marker_color=colour,
                             hovertemplate=f"{name}<br>size %{{x}}: %{{y:.1%}} of filters<extra></extra>"))
    fig.update_xaxes(title_text=f"effective size (pixels, {energy:.0%} of the energy)", tickvals=sides,
                     range=[0, kernel_size + 1])
    fig.update_yaxes(title_text="share of filters", tickformat=".0%")
    fig.update_layout(barmode="group")
    return _finish_with_legend_below(fig, f"Effective sizes ({kernel_size} x {kernel_size} filters)",
                                     height, len(names), "mean effective size (pixels)")


def sigma_curve_figure(curve, *, current_sigma: float | None = None, fitted: list[dict] | None = None,
                       height: int = 330) -> go.Figure:
    """Half-max frequency of a sigma scheme's filters (curve.scheme) against sigma (log axis), PyTorch's default
    i.i.d. filters as a reference level (at the 0.5 cycles/pixel limit when they never fall to
    half), the current sigma marked, and a run's layers (`fitted`: layer, sigma, r, half-max
    frequency) as diamonds at their fitted sigma: below the curve, smoother than the closed form."""
    x, k = list(curve.sigmas), curve.kernel_size
    fig = go.Figure([
        go.Scatter(x=x, y=curve.half_max, mode="lines+markers", name=f"{curve.scheme.capitalize()} closed form",
                   line=dict(color=TRAINED_COLOUR), marker=dict(size=5),
                   hovertemplate="σ = %{x:.3g}: falls to half at %{y:.3f} cycles/pixel<extra></extra>"),
    ])
    default = curve.default_half_max
    points = [f for f in fitted or [] if f.get("half-max frequency") is not None]
    sigmas = [s for s in x + [f["sigma"] for f in points] if s > 0]
    # a legend entry, not a label on the line: the current sigma's vertical line crossed that label
    fig.add_trace(go.Scatter(
        x=[min(sigmas), max(sigmas)], y=[0.5 if default is None else default] * 2, mode="lines",
        line=dict(color=DEFAULT_INIT_COLOUR, dash="dash"), hoverinfo="skip",
        name="PyTorch default (white noise): " + ("never falls to half" if default is None else f"{default:.2f}")))
    if points:
        fig.add_trace(go.Scatter(
            x=[f["sigma"] for f in points], y=[f["half-max frequency"] for f in points],
            mode="markers", name="the network's layers (at their fitted σ)",
            marker=dict(size=10, symbol="diamond", color=layer_colours(len(points)),
                        line=dict(width=1, color="#333")),
            customdata=[[f["layer"], f["r"]] for f in points],
            hovertemplate="%{customdata[0]}: fitted σ = %{x:.2f} (r = %{customdata[1]:.2f})<br>"
                          "falls to half at %{y:.3f} cycles/pixel<extra></extra>"))
    if current_sigma is not None:
        fig.add_vline(x=current_sigma, line=dict(color="#555", dash="dot"))
        # annotations on a log axis take log10 coordinates; the label goes on the side of the line
        # with room (right of it, it ran off the plot at the largest sigma)
        left = math.log10(current_sigma) > (math.log10(min(sigmas)) + math.log10(max(sigmas))) / 2
        fig.add_annotation(x=math.log10(current_sigma), y=0.02, yref="paper",
                           text=f"σ = {current_sigma:g} " if left else f" σ = {current_sigma:g}",
                           showarrow=False, xanchor="right" if left else "left", yanchor="bottom",
                           font=dict(color="#555"))
    fig.update_xaxes(title_text="σ of the closed-form covariance (pixels, log scale)", type="log",
                     range=[math.log10(min(sigmas)) - 0.05, math.log10(max(sigmas)) + 0.05],
                     tickvals=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50])
    fig.update_yaxes(title_text="half-max frequency (cycles/pixel)", range=[0, 0.55])
    fig.update_layout(legend=BOTTOM_LEGEND)
    fig = finish_figure(fig, f"σ against smoothness, {k} x {k} filters", height + 40)
    return fig.update_layout(margin=dict(l=60, r=20, t=50, b=20))
