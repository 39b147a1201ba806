"""Plotly figures of filter covariances: the matrix in its flat or tiled view, one block, the
Kronecker factor, the eigenvalues, one image per layer, and a sample next to its target.

Views follow DESIGN.md section 2: flat S[k*i + j, k*l + m] = B[i, j, l, m] and tiled
T[i*k + l, j*k + m] = B[i, j, l, m]. Small matrices become real heatmaps whose hover names the pixel
pair; large ones are sent as one PNG image (see matrix_image). Figures of the filters themselves are
in `filters`; the shared colours, colour bars and layout in `style`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..covariance import KroneckerCovariance, kernel_size_of, to_blocks, to_tiled
from .matrix_image import HEATMAP_MAX_CELLS, downscale, image_grid_figure, image_trace
from .style import (
    colour_range,
    colourbar,
    colourbar_trace,
    finish_figure,
    place_bar_below,
    square_axes,
    tile_line_shapes,
    to_numpy,
)

#: Largest kernel size whose tiled view gets lines between tiles (beyond, they hide the data).
TILE_LINES_MAX_K = 15
#: Longest side (pixels) of each small-multiple panel of `depth_figure`.
PANEL_MAX_SIDE = 400


def _dense(S) -> torch.Tensor:
    """A covariance (KroneckerCovariance or matrix-like) as a dense float64 tensor."""
    return (S.dense() if isinstance(S, KroneckerCovariance) else torch.as_tensor(S)).to(torch.float64)


def normalize_blocks(S: torch.Tensor) -> torch.Tensor:
    """Flat S with every block B[i, j] divided by its own max |value| (zero blocks stay zero)."""
    B = to_blocks(S)
    top = B.abs().amax(dim=(2, 3), keepdim=True)
    return (B / torch.where(top > 0, top, torch.ones_like(top))).reshape(S.shape)


def pixel_pairs(k: int, view: str) -> np.ndarray:
    """(k^2, k^2, 4) uint8 array of (i, j, l, m) for each cell of the flat or tiled view."""
    r, c = np.meshgrid(np.arange(k * k), np.arange(k * k), indexing="ij")
    if view == "tiled":  # T[i*k + l, j*k + m]
        i, l, j, m = r // k, r % k, c // k, c % k
    else:  # S[k*i + j, k*l + m]
        i, j, l, m = r // k, r % k, c // k, c % k
    return np.stack([i, j, l, m], axis=-1).astype(np.uint8 if k < 256 else np.uint16)


def view_matrix(S: torch.Tensor, view: str) -> torch.Tensor:
    """The flat matrix itself (view "flat") or its tiled permutation (view "tiled")."""
    if view not in ("flat", "tiled"):
        raise ValueError(f"view must be 'flat' or 'tiled', got {view!r}")
    return to_tiled(S) if view == "tiled" else S


def _axis_titles(view: str) -> tuple[str, str]:
    if view == "tiled":
        return "column j·k + m", "row i·k + l"
    return "pixel (l, m) as k·l + m", "pixel (i, j) as k·i + j"


def covariance_figure(S, *, view: str = "tiled", per_block: bool = False, pickable: bool = False,
                      title: str = "", height: int = 560,
                      max_cells: int = HEATMAP_MAX_CELLS) -> go.Figure:
    """Heatmap of a k^2 x k^2 covariance in the tiled or flat view.

    Up to `max_cells` cells it is a heatmap whose hover gives the pixel pair (i, j), (l, m) and
    the covariance; above that a PNG image of block averages, at most `height` pixels a side, on a
    colour scale of those averages (hover gives row and column only). `per_block` scales
    each block B[i, j] by its own max |value|. `pickable` adds click targets at the tile centres
    of the tiled view (see `tile_picker_trace`).
    """
    S = _dense(S)
    k = kernel_size_of(S)
    shown = normalize_blocks(S) if per_block else S
    z = to_numpy(view_matrix(shown, view))
    zmin, zmax, scale = colour_range(z)
    bar_title = "value / block max" if per_block else "covariance"
    fig = go.Figure()
    if z.size <= max_cells:
        customdata = pixel_pairs(k, view)  # small integers: sent as uint8
        value = "%{z:.4g}"
        if per_block:  # the colour shows the scaled value; hover still reports the covariance
            raw = to_numpy(view_matrix(S, view)).astype(np.float32)[..., None]
            customdata, value = np.concatenate([customdata, raw], axis=-1), "%{customdata[4]:.4g}"
        fig.add_trace(go.Heatmap(
            z=z.astype(np.float32), zmin=zmin, zmax=zmax, colorscale=scale, customdata=customdata,
            colorbar=colourbar(bar_title, below=True),
            hovertemplate="pixel (%{customdata[0]}, %{customdata[1]}) with "
                          f"(%{{customdata[2]}}, %{{customdata[3]}})<br>covariance {value}<extra></extra>",
        ))
    else:  # about one image pixel per screen pixel; colours span the block averages it shows, whose
        # peaks are far below the matrix's (a k = 51 tile's bump covers a few of its 2601 cells)
        shown = downscale(z, height)[0]
        zmin, zmax, scale = colour_range(shown)
        fig.add_trace(image_trace(z, zmin, zmax, scale, max_side=height))
        fig.add_trace(colourbar_trace(zmin, zmax, scale, colourbar(f"{bar_title} (block average)", below=True)))
    if view == "tiled" and 1 < k <= TILE_LINES_MAX_K:
        fig.update_layout(shapes=tile_line_shapes(k))
    if pickable and view == "tiled":
        fig.add_trace(tile_picker_trace(k))
        fig.update_layout(hoverdistance=2)  # the heatmap's hover wins except right on a tile centre
    square_axes(fig, *_axis_titles(view), side=k * k)
    return place_bar_below(finish_figure(fig, title, height), gap_px=60)


def outline_block(fig: go.Figure, k: int, view: str, i: int, j: int) -> None:
    """Frame the cells that hold block B[i, j]: tile (i, j) when tiled, row k*i + j when flat.

    Replaces any earlier outline (and keeps the tile lines), so one figure can be re-framed for
    each selected pixel.
    """
    if view == "tiled":
        x0, y0, x1, y1 = j * k - 0.5, i * k - 0.5, (j + 1) * k - 0.5, (i + 1) * k - 0.5
    else:
        x0, y0, x1, y1 = -0.5, k * i + j - 0.5, k * k - 0.5, k * i + j + 0.5
    kept = [shape for shape in fig.layout.shapes if shape.name != "outline"]
    fig.layout.shapes = kept + [dict(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, name="outline",
                                     line=dict(color="#ff3d00", width=2))]


def tile_picker_trace(k: int) -> go.Scatter:
    """Transparent markers at the tile centres of a tiled view, so a click picks pixel (i, j)."""
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    centre = (k - 1) / 2
    return go.Scatter(
        x=(j * k + centre).ravel(), y=(i * k + centre).ravel(), mode="markers",
        marker=dict(size=8, color="rgba(0,0,0,0)"),
        customdata=np.stack([i.ravel(), j.ravel()], axis=-1),
        hovertemplate="click: show block of pixel (%{customdata[0]}, %{customdata[1]})<extra></extra>",
        showlegend=False,
    )


def block_figure(S, i: int, j: int, *, title: str = "", height: int = 330) -> go.Figure:
    """Block B[i, j] as a k x k image: how pixel (i, j) co-varies with every pixel (l, m)."""
    S = _dense(S)
    k = kernel_size_of(S)
    if not (0 <= i < k and 0 <= j < k):
        raise ValueError(f"pixel ({i}, {j}) is outside a {k} x {k} filter")
    block = to_numpy(to_blocks(S)[i, j])
    zmin, zmax, scale = colour_range(block)
    fig = go.Figure(go.Heatmap(
        z=block, zmin=zmin, zmax=zmax, colorscale=scale,
        colorbar=colourbar("covariance"),
        hovertemplate=f"pixel ({i}, {j}) with (%{{y}}, %{{x}})<br>covariance %{{z:.4g}}<extra></extra>",
    ))
    # the pixel itself framed, not covered: at small sigma its cell is the block's only bright one
    fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5,
                  line=dict(width=2, color="#ff3d00"))
    square_axes(fig, "column m", "row l", side=k)
    return finish_figure(fig, title or f"Block of pixel ({i}, {j})", height)


def factor_figure(A, *, sigma: float | None = None, height: int = 300) -> go.Figure:
    """The k x k Kronecker factor A (S = A ⊗ A) as an image with A[i, l] on hover."""
    a = to_numpy(torch.as_tensor(A, dtype=torch.float64))
    zmin, zmax, scale = colour_range(a)
    fig = go.Figure(go.Heatmap(
        z=a, zmin=zmin, zmax=zmax, colorscale=scale,
        colorbar=colourbar("A[i, l]"),
        hovertemplate="A[%{y}, %{x}] = %{z:.4g}<extra></extra>",
    ))
    square_axes(fig, "l", "i", side=a.shape[0])
    formula = f", σ = {sigma:.3g}" if sigma is not None else ""
    return finish_figure(fig, f"1-D factor A (S = A ⊗ A{formula})", height)


def eigenvalue_figure(eigenvalues, effective_rank: float, *, height: int = 300,
                      relative_floor: float = 1e-16) -> go.Figure:
    """Eigenvalues, largest first, on a log axis. Those below relative_floor x the largest are
    round-off (float64 cannot resolve them) and are left out, with their count in the title."""
    w = np.sort(to_numpy(torch.as_tensor(eigenvalues, dtype=torch.float64)))[::-1]
    top = float(w[0]) if w.size else 0.0
    resolved = w[w > relative_floor * top] if top > 0 else w[:0]
    fig = go.Figure(go.Scatter(
        x=np.arange(1, resolved.size + 1), y=resolved, mode="lines+markers", marker=dict(size=4),
        hovertemplate="eigenvalue #%{x}: %{y:.4g}<extra></extra>", showlegend=False,
    ))
    # minor labels in full (0.5, 0.2), not as bare digits that read like 5 and 2
    fig.update_yaxes(type="log", title_text="eigenvalue", exponentformat="power", minorloglabels="complete")
    fig.update_xaxes(title_text="index (largest first)", range=[0, w.size + 1])
    title = f"Eigenvalues: effective rank {effective_rank:.1f} of {w.size}"
    if resolved.size < w.size:
        title += f"<br><sup>{w.size - resolved.size} below {relative_floor:g} × largest not shown</sup>"
        return finish_figure(fig, title, height).update_layout(margin=dict(t=65))
    return finish_figure(fig, title, height)


def overview_panels(covariances, panel_side: int) -> tuple[list[np.ndarray], int | None]:
    """Small-multiple panels of covariances of one kernel size k: (panels, k for tile lines or
    None). Each is the tiled view up to TILE_LINES_MAX_K; above, where a panel has fewer pixels
    than the tiled view has cells and the bumps average away, the block of the centre pixel
    B[c, c] (c = k // 2). Longer sides than panel_side are area-averaged down."""
    panels, k = [], None
    for c in covariances:  # one dense matrix at a time: at k = 51 each is 2601 x 2601
        S = _dense(c)
        k = kernel_size_of(S)
        shown = to_tiled(S) if k <= TILE_LINES_MAX_K else to_blocks(S)[k // 2, k // 2]
        panels.append(downscale(to_numpy(shown), panel_side)[0])
    return panels, (k if k is not None and k <= TILE_LINES_MAX_K else None)


def depth_figure(covariances, sigmas, *, columns: int = 4, panel_side: int = PANEL_MAX_SIDE,
                 panel_height: int = 220) -> go.Figure:
    """Small multiples, one shared colour scale: each layer's `overview_panels` view as an image
    (the tiled view with lines between tiles, or the centre pixel's block above TILE_LINES_MAX_K)."""
    covariances = list(covariances)
    if len(covariances) != len(sigmas) or not covariances:
        raise ValueError("need one sigma per covariance and at least one layer")
    panels, tile_k = overview_panels(covariances, panel_side)
    return image_grid_figure(panels, [f"layer {n + 1}: σ = {s:.2f}" for n, s in enumerate(sigmas)],
                             columns=columns, bar_title="covariance", panel_height=panel_height,
                             tile_k=tile_k)


def covariance_pair_figure(empirical, target, *, title: str = "", height: int = 330,
                           max_cells: int = HEATMAP_MAX_CELLS, panel_px: int = 480) -> go.Figure:
    """Tiled empirical covariance next to the tiled target, on one colour scale. A view with more
    than max_cells cells or more than panel_px (the width of a panel) cells a side is drawn as an
    image of block averages coloured on their own range: a heatmap with several cells per screen
    pixel shows a thin diagonal as nothing."""
    E, T = (to_numpy(to_tiled(torch.as_tensor(M, dtype=torch.float64))) for M in (empirical, target))
    k = kernel_size_of(torch.as_tensor(target))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.06, subplot_titles=["sample", "target"])
    if E.size <= max_cells and E.shape[0] <= panel_px:
        zmin, zmax, scale = colour_range(np.stack([E, T]))
        pairs = pixel_pairs(k, "tiled")
        for col, z in ((1, E), (2, T)):
            fig.add_trace(go.Heatmap(
                z=z, zmin=zmin, zmax=zmax, colorscale=scale, customdata=pairs, coloraxis=None,
                showscale=col == 2, colorbar=colourbar("covariance", below=True),
                hovertemplate="pixel (%{customdata[0]}, %{customdata[1]}) with "
                              "(%{customdata[2]}, %{customdata[3]})<br>%{z:.3g}<extra></extra>",
            ), row=1, col=col)
    else:
        zmin, zmax, scale = colour_range(np.stack([downscale(z, panel_px)[0] for z in (E, T)]))
        for col, z in ((1, E), (2, T)):
            fig.add_trace(image_trace(z, zmin, zmax, scale, max_side=panel_px), row=1, col=col)
        fig.add_trace(colourbar_trace(zmin, zmax, scale, colourbar("covariance (block average)", below=True)))
    for col in (1, 2):
        fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False,
                         constrain="domain", row=1, col=col)
        fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, autorange="reversed",
                         scaleanchor=f"x{'' if col == 1 else col}", constrain="domain", row=1, col=col)
    fig.update_annotations(font_size=11)  # subplot titles
    fig = finish_figure(fig, title, height).update_layout(margin=dict(l=10, r=10, t=60))
    return place_bar_below(fig, gap_px=8)
