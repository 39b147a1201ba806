"""Plotly figures for filter covariances, sampled filters and their spectra (no streamlit here).

Views follow DESIGN.md section 2: flat S[k*i + j, k*l + m] = B[i, j, l, m] and tiled
T[i*k + l, j*k + m] = B[i, j, l, m]. Small matrices become real heatmaps whose hover names the pixel
pair; large ones are sent as one PNG image (a k = 31 tiled covariance has 923,521 cells, too many
for a JSON heatmap), so the browser stays light.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from ..covariance import KroneckerCovariance, kernel_size_of, to_blocks, to_tiled

#: Largest matrix (in cells) drawn as an interactive heatmap; 15^4 = a tiled covariance at k = 15.
HEATMAP_MAX_CELLS = 15**4
#: Largest kernel size whose tiled view gets lines between tiles (beyond, they hide the data).
TILE_LINES_MAX_K = 15
#: Longest side (pixels) of a matrix sent as an image; larger matrices are area-averaged down.
IMAGE_MAX_SIDE = 1024
#: Longest side (pixels) of each small-multiple panel of `depth_figure`.
PANEL_MAX_SIDE = 400

SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"
_FONT = dict(size=12)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def colour_range(values) -> tuple[float, float, str]:
    """(zmin, zmax, colorscale): [0, max] on a sequential scale for non-negative values, else a
    diverging scale centred on 0 with limits +-max|value|."""
    v = _numpy(values)
    finite = v[np.isfinite(v)]
    top = float(np.abs(finite).max()) if finite.size else 1.0
    top = top if top > 0 else 1.0
    if finite.size and finite.min() >= 0:
        return 0.0, top, SEQUENTIAL
    return -top, top, DIVERGING


def _lookup_table(colorscale: str) -> np.ndarray:
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


def _png_source(matrix: np.ndarray, zmin: float, zmax: float, colorscale: str) -> str:
    """Data-URI PNG of the matrix colour-mapped onto [zmin, zmax] (NaN drawn as the midpoint)."""
    filled = np.nan_to_num(matrix, nan=(zmin + zmax) / 2)
    scaled = (filled - zmin) / max(zmax - zmin, 1e-300)
    index = np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(_lookup_table(colorscale)[index]).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image_trace(matrix: np.ndarray, zmin: float, zmax: float, colorscale: str,
                 max_side: int = IMAGE_MAX_SIDE) -> go.Image:
    """The matrix as a colour-mapped PNG placed on the same axes as a heatmap of it would be."""
    small, step = downscale(matrix, max_side)
    return go.Image(source=_png_source(small, zmin, zmax, colorscale),
                    x0=step / 2 - 0.5, dx=step, y0=step / 2 - 0.5, dy=step,
                    hovertemplate="row %{y:.0f}, column %{x:.0f}<extra></extra>")


def colourbar(title: str, *, below: bool = False) -> dict:
    """Colour bar settings: a thin bar on the right, or a horizontal bar under the plot (for
    square plots in narrow columns, where a side bar takes a third of the width);
    `_place_bar_below` puts it at a fixed distance in pixels once the figure's height is known."""
    if below:
        return dict(title=dict(text=title, side="top"), orientation="h", thickness=8, len=0.9,
                    x=0.5, xanchor="center", yanchor="top", title_font_size=11)
    return dict(title=dict(text=title, side="right"), thickness=12)


def _place_bar_below(fig: go.Figure, gap_px: int) -> go.Figure:
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


def _colourbar_trace(zmin: float, zmax: float, colorscale: str, bar: dict) -> go.Scatter:
    """An invisible trace that only draws a colour bar (images have none of their own)."""
    return go.Scatter(
        x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
        marker=dict(colorscale=colorscale, cmin=zmin, cmax=zmax, color=[zmin], showscale=True,
                    colorbar=bar),
    )


def _square_axes(fig: go.Figure, x_title: str = "", y_title: str = "") -> None:
    """Matrix orientation (row 0 on top), square cells, no grid (single-plot figures)."""
    fig.update_xaxes(title_text=x_title, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(title_text=y_title, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor="x", constrain="domain")


def _finish(fig: go.Figure, title: str, height: int) -> go.Figure:
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


# ---------------------------------------------------------------------------------------------
# Covariance matrix views
# ---------------------------------------------------------------------------------------------


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
    the covariance; above that a PNG image (hover gives row and column only). `per_block` scales
    each block B[i, j] by its own max |value|. `pickable` adds click targets at the tile centres
    of the tiled view (see `tile_picker_trace`).
    """
    S = (S.dense() if isinstance(S, KroneckerCovariance) else torch.as_tensor(S)).to(torch.float64)
    k = kernel_size_of(S)
    shown = normalize_blocks(S) if per_block else S
    z = _numpy(view_matrix(shown, view))
    zmin, zmax, scale = colour_range(z)
    bar_title = "value / block max" if per_block else "covariance"
    fig = go.Figure()
    if z.size <= max_cells:
        customdata = pixel_pairs(k, view)  # small integers: sent as uint8
        value = "%{z:.4g}"
        if per_block:  # the colour shows the scaled value; hover still reports the covariance
            raw = _numpy(view_matrix(S, view)).astype(np.float32)[..., None]
            customdata, value = np.concatenate([customdata, raw], axis=-1), "%{customdata[4]:.4g}"
        fig.add_trace(go.Heatmap(
            z=z.astype(np.float32), zmin=zmin, zmax=zmax, colorscale=scale, customdata=customdata,
            colorbar=colourbar(bar_title, below=True),
            hovertemplate="pixel (%{customdata[0]}, %{customdata[1]}) with "
                          f"(%{{customdata[2]}}, %{{customdata[3]}})<br>covariance {value}<extra></extra>",
        ))
    else:
        fig.add_trace(_image_trace(z, zmin, zmax, scale))
        fig.add_trace(_colourbar_trace(zmin, zmax, scale, colourbar(bar_title, below=True)))
    if view == "tiled" and 1 < k <= TILE_LINES_MAX_K:
        fig.update_layout(shapes=tile_line_shapes(k))
    if pickable and view == "tiled":
        fig.add_trace(tile_picker_trace(k))
        fig.update_layout(hoverdistance=2)  # the heatmap's hover wins except right on a tile centre
    _square_axes(fig, *_axis_titles(view))
    return _place_bar_below(_finish(fig, title, height), gap_px=60)


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
    S = (S.dense() if isinstance(S, KroneckerCovariance) else torch.as_tensor(S)).to(torch.float64)
    k = kernel_size_of(S)
    if not (0 <= i < k and 0 <= j < k):
        raise ValueError(f"pixel ({i}, {j}) is outside a {k} x {k} filter")
    block = _numpy(to_blocks(S)[i, j])
    zmin, zmax, scale = colour_range(block)
    fig = go.Figure(go.Heatmap(
        z=block, zmin=zmin, zmax=zmax, colorscale=scale,
        colorbar=colourbar("covariance"),
        hovertemplate=f"pixel ({i}, {j}) with (%{{y}}, %{{x}})<br>covariance %{{z:.4g}}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(x=[j], y=[i], mode="markers", showlegend=False, hoverinfo="skip",
                             marker=dict(symbol="x-thin", size=10, line=dict(width=2, color="#ff3d00"))))
    _square_axes(fig, "column m", "row l")
    return _finish(fig, title or f"Block of pixel ({i}, {j})", height)


def factor_figure(A, *, sigma: float | None = None, height: int = 300) -> go.Figure:
    """The k x k Kronecker factor A (S = A ⊗ A) as an image with A[i, l] on hover."""
    a = _numpy(torch.as_tensor(A, dtype=torch.float64))
    zmin, zmax, scale = colour_range(a)
    fig = go.Figure(go.Heatmap(
        z=a, zmin=zmin, zmax=zmax, colorscale=scale,
        colorbar=colourbar("A[i, l]"),
        hovertemplate="A[%{y}, %{x}] = %{z:.4g}<extra></extra>",
    ))
    _square_axes(fig, "l", "i")
    formula = f", σ = {sigma:.3g}" if sigma is not None else ""
    return _finish(fig, f"1-D factor A (S = A ⊗ A{formula})", height)


def eigenvalue_figure(eigenvalues, effective_rank: float, *, height: int = 300,
                      relative_floor: float = 1e-16) -> go.Figure:
    """Eigenvalues, largest first, on a log axis. Those below relative_floor x the largest are
    round-off (float64 cannot resolve them) and are left out, with their count in the title."""
    w = np.sort(_numpy(torch.as_tensor(eigenvalues, dtype=torch.float64)))[::-1]
    top = float(w[0]) if w.size else 0.0
    resolved = w[w > relative_floor * top] if top > 0 else w[:0]
    fig = go.Figure(go.Scatter(
        x=np.arange(1, resolved.size + 1), y=resolved, mode="lines+markers", marker=dict(size=4),
        hovertemplate="eigenvalue #%{x}: %{y:.4g}<extra></extra>", showlegend=False,
    ))
    fig.update_yaxes(type="log", title_text="eigenvalue", exponentformat="power")
    fig.update_xaxes(title_text="index (largest first)", range=[0, w.size + 1])
    title = f"Eigenvalues: effective rank {effective_rank:.1f} of {w.size}"
    if resolved.size < w.size:
        title += f"<br><sup>{w.size - resolved.size} below {relative_floor:g} × largest not shown</sup>"
        return _finish(fig, title, height).update_layout(margin=dict(t=65))
    return _finish(fig, title, height)


def small_multiples(titles: list[str], columns: int, *, horizontal_spacing: float = 0.02,
                    vertical_spacing: float = 0.25) -> tuple[go.Figure, list[dict]]:
    """A grid of len(titles) titled panels, `columns` wide (fewer for fewer panels): the figure and
    each panel's dict(row=, col=). vertical_spacing is shared by all the rows together."""
    cols = min(columns, len(titles))
    rows = math.ceil(len(titles) / cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=horizontal_spacing,
                        vertical_spacing=vertical_spacing / rows, subplot_titles=titles)
    return fig, [dict(row=n // cols + 1, col=n % cols + 1) for n in range(len(titles))]


def image_grid_figure(panels: list[np.ndarray], titles: list[str], *, columns: int, bar_title: str,
                      panel_height: int) -> go.Figure:
    """Small multiples of matrices drawn as images on one shared colour scale, without ticks."""
    zmin, zmax, scale = colour_range(np.concatenate([p.ravel() for p in panels]))
    fig, cells = small_multiples(titles, columns)
    for z, where in zip(panels, cells):
        fig.add_trace(_image_trace(z, zmin, zmax, scale), **where)
        fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, **where)
        fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, **where)
    fig.update_traces(hoverinfo="skip", hovertemplate=None, selector=dict(type="image"))
    fig.add_trace(_colourbar_trace(zmin, zmax, scale, colourbar(bar_title)))
    fig.update_annotations(font=dict(size=11))
    fig = _finish(fig, "", panel_height * cells[-1]["row"] + 40)
    return fig.update_layout(margin=dict(l=10, r=10, t=30, b=10))


def depth_figure(covariances, sigmas, *, columns: int = 4, panel_side: int = PANEL_MAX_SIDE,
                 panel_height: int = 220) -> go.Figure:
    """Small multiples: the tiled covariance of each layer as an image, one shared colour scale."""
    covariances = list(covariances)
    if len(covariances) != len(sigmas) or not covariances:
        raise ValueError("need one sigma per covariance and at least one layer")
    panels = []
    for c in covariances:  # one dense matrix at a time: at k = 51 each is 2601 x 2601
        S = (c.dense() if isinstance(c, KroneckerCovariance) else torch.as_tensor(c)).to(torch.float64)
        panels.append(downscale(_numpy(to_tiled(S)), panel_side)[0])
    return image_grid_figure(panels, [f"layer {n + 1}: σ = {s:.2f}" for n, s in enumerate(sigmas)],
                             columns=columns, bar_title="covariance", panel_height=panel_height)


# ---------------------------------------------------------------------------------------------
# Sampled filters
# ---------------------------------------------------------------------------------------------


def filter_grid_figure(filters, *, columns: int | None = None, title: str = "", height: int = 400,
                       max_cells: int = HEATMAP_MAX_CELLS) -> go.Figure:
    """Filters (N, k, k) as a mosaic (`columns` wide, default a square-ish ceil(sqrt(N))) on one
    diverging colour scale centred on 0 shared by all filters shown; hover gives the filter number,
    pixel and weight."""
    f = _numpy(torch.as_tensor(filters, dtype=torch.float64))
    if f.ndim != 3 or f.shape[0] == 0:
        raise ValueError(f"filters must have shape (N, k, k) with N >= 1, got {f.shape}")
    n, k, _ = f.shape
    cols = min(columns or math.ceil(math.sqrt(n)), n)
    rows = math.ceil(n / cols)
    pitch = k + 1  # one blank row/column between filters
    mosaic = np.full((rows * pitch - 1, cols * pitch - 1), np.nan)
    info = np.full(mosaic.shape + (3,), -1, dtype=np.int16)
    for idx in range(n):
        r0, c0 = (idx // cols) * pitch, (idx % cols) * pitch
        mosaic[r0:r0 + k, c0:c0 + k] = f[idx]
        li, lj = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        info[r0:r0 + k, c0:c0 + k] = np.stack([np.full_like(li, idx + 1), li, lj], axis=-1)
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
        fig.add_trace(_image_trace(mosaic, -top, top, DIVERGING))
        fig.add_trace(_colourbar_trace(-top, top, DIVERGING, colourbar("weight", below=True)))
    fig.update_xaxes(showticklabels=False, ticks="")
    fig.update_yaxes(showticklabels=False, ticks="")
    _square_axes(fig)
    fig = _finish(fig, title, height).update_layout(margin=dict(l=10, r=10, t=40))
    return _place_bar_below(fig, gap_px=8)


def covariance_pair_figure(empirical, target, *, title: str = "", height: int = 330,
                           max_cells: int = HEATMAP_MAX_CELLS) -> go.Figure:
    """Tiled empirical covariance next to the tiled target, on one colour scale."""
    E, T = (_numpy(to_tiled(torch.as_tensor(M, dtype=torch.float64))) for M in (empirical, target))
    k = kernel_size_of(torch.as_tensor(target))
    zmin, zmax, scale = colour_range(np.stack([E, T]))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.06, subplot_titles=["sample", "target"])
    if E.size <= max_cells:
        pairs = pixel_pairs(k, "tiled")
        for col, z in ((1, E), (2, T)):
            fig.add_trace(go.Heatmap(
                z=z, zmin=zmin, zmax=zmax, colorscale=scale, customdata=pairs, coloraxis=None,
                showscale=col == 2, colorbar=colourbar("covariance", below=True),
                hovertemplate="pixel (%{customdata[0]}, %{customdata[1]}) with "
                              "(%{customdata[2]}, %{customdata[3]})<br>%{z:.3g}<extra></extra>",
            ), row=1, col=col)
    else:
        for col, z in ((1, E), (2, T)):
            fig.add_trace(_image_trace(z, zmin, zmax, scale, max_side=480), row=1, col=col)
        fig.add_trace(_colourbar_trace(zmin, zmax, scale, colourbar("covariance", below=True)))
    for col in (1, 2):
        fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False,
                         constrain="domain", row=1, col=col)
        fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, autorange="reversed",
                         scaleanchor=f"x{'' if col == 1 else col}", constrain="domain", row=1, col=col)
    fig.update_annotations(font_size=11)  # subplot titles
    fig = _finish(fig, title, height).update_layout(margin=dict(l=10, r=10, t=60))
    return _place_bar_below(fig, gap_px=8)


def spectrum_figure(spectrum, *, title: str = "Mean |FFT| of the filters", height: int = 330) -> go.Figure:
    """A centred size x size magnitude spectrum (DC in the middle) on frequency axes in cycles/pixel."""
    spec = _numpy(torch.as_tensor(spectrum, dtype=torch.float64))
    size = spec.shape[0]
    freq = (np.arange(size) - size // 2) / size
    fig = go.Figure(go.Heatmap(
        z=spec, x=freq, y=freq, colorscale=SEQUENTIAL, zmin=0, zmax=float(spec.max()) or 1.0,
        colorbar=colourbar("|FFT|", below=True),
        hovertemplate="u = %{x:.3f}, v = %{y:.3f} cycles/pixel<br>|FFT| %{z:.4g}<extra></extra>",
    ))
    fig.update_xaxes(title_text="u (cycles/pixel)", constrain="domain")
    fig.update_yaxes(title_text="v (cycles/pixel)", scaleanchor="x", constrain="domain")
    return _place_bar_below(_finish(fig, title, height), gap_px=60)
