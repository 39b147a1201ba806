"""Figures stay readable at the ends of the widgets' ranges (#25 item 4): no colour bar repeats a
tick label, large tiled views are not uniformly dark, small tiled views have lines between tiles."""

import base64
import io

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from convcov_core import covariance, learned_sets
from convcov_core.plots import analysis, filters, learned, style
from convcov_core.plots import covariance as cov_plots
from convcov_core.plots.matrix_image import lookup_table

SIGMAS = (0.1, 10.0)


def colour_bars(fig: go.Figure) -> list:
    """Every colour bar the figure shows (heatmaps' own, and the markers' of colour-bar traces)."""
    bars = []
    for trace in fig.data:
        if isinstance(trace, go.Heatmap) and trace.showscale is not False:
            bars.append(trace.colorbar)
        elif isinstance(trace, go.Scatter) and trace.marker.showscale:
            bars.append(trace.marker.colorbar)
    return bars


def small_scale_covariance(k: int, sigma: float, scale: float) -> torch.Tensor:
    """A Gaussian covariance at a per-weight variance like PyTorch's default init (1 / (3 k^2))."""
    return covariance.gaussian(k, sigma) * scale


def extreme_figures():
    """(name, figure) for every plot function with a colour bar, at the ends of its page's widgets."""
    for k in (3, 15):
        for sigma in SIGMAS:
            S = small_scale_covariance(k, sigma, 1 / (3 * k * k))
            noisy = S + 1e-4 * torch.randn(k * k, k * k, generator=torch.Generator().manual_seed(0))
            yield f"covariance k={k} σ={sigma}", cov_plots.covariance_figure(S)
            yield f"covariance per block k={k} σ={sigma}", cov_plots.covariance_figure(S, per_block=True)
            yield f"block k={k} σ={sigma}", cov_plots.block_figure(S, 0, 0)
            factor = covariance.gaussian(k, sigma, structured=True).factor
            yield f"factor k={k} σ={sigma}", cov_plots.factor_figure(factor)
            for panel_px in (116, 480):  # the Gallery's panels three a row, and one scheme alone
                yield f"pair k={k} σ={sigma} {panel_px}px", cov_plots.covariance_pair_figure(
                    (noisy + noisy.T) / 2, S, height=190, panel_px=panel_px)
            yield f"depth k={k} σ={sigma}", cov_plots.depth_figure([S, 2 * S], [sigma, sigma])
            yield f"layers k={k} σ={sigma}", learned.layer_grid_figure([S, noisy], ["1", "2"])
            yield f"closed form k={k} σ={sigma}", learned.closed_form_figure(
                *learned_sets.closed_form_beside(noisy, sigma), sigma=sigma, r=0.5, layer="1")
            yield f"profiles k={k} σ={sigma}", learned.offset_profile_figure(
                [learned_sets.offset_profile(S)], ["1"])
            yield f"AGOP k={k} σ={sigma}", analysis.matrix_pair_figure(S, noisy, kernel_size=k, channels=1, r=0.9)
    for n in (1, 64):
        for k in (3, 15):
            f = torch.randn(n, k, k, generator=torch.Generator().manual_seed(n)) / (3 * k)
            yield f"filters n={n} k={k}", filters.filter_grid_figure(f, height=190)
            yield f"spectrum n={n} k={k}", filters.spectrum_figure(torch.rand(64, 64) * 1e-3, height=190)
    yield "spectra", analysis.spectra_figure([np.random.default_rng(0).random((64, 64))], ["layer 1"])


FIGURES = list(extreme_figures())


@pytest.mark.parametrize("name, fig", FIGURES, ids=[name for name, _ in FIGURES])
def test_no_colour_bar_repeats_a_tick_label(name, fig):
    bars = colour_bars(fig)
    assert bars, f"{name}: no colour bar found"
    for bar in bars:
        labels = list(bar.ticktext or [])
        assert len(labels) >= 2, f"{name}: colour bar without explicit tick labels ({labels})"
        assert len(set(labels)) == len(labels), f"{name}: repeated tick labels {labels}"
        assert [float(label) for label in labels] == pytest.approx(list(bar.tickvals), rel=1e-9), name


@pytest.mark.parametrize("name, fig", FIGURES, ids=[name for name, _ in FIGURES])
def test_no_axis_draws_ticks_without_labels(name, fig):
    """Streamlit's theme draws tick marks unless an axis says ticks="": marks without labels read
    as a broken axis."""
    axes = [fig.layout[key] for key in fig.layout if key.startswith(("xaxis", "yaxis"))]
    bare = [axis.plotly_name for axis in axes if axis.showticklabels is False and axis.visible is not False
            and axis.ticks != ""]
    assert not bare, f"{name}: tick marks without labels on {bare}"


@pytest.mark.parametrize("zmin, zmax", [(0.0, 1.0), (0.0, 0.0123), (-4e-3, 4e-3), (0.99, 1.01),
                                        (0.123456, 0.123457), (0.0, 1e-5), (-1.0, 3.0)])
@pytest.mark.parametrize("count", [3, 5])
def test_colour_ticks_are_round_distinct_and_inside_the_range(zmin, zmax, count):
    values, labels = style.colour_ticks(zmin, zmax, count)
    assert 2 <= len(values) <= max(count, 2) and len(set(labels)) == len(labels)
    assert all(zmin - 1e-12 <= v <= zmax + 1e-12 for v in values)
    assert [float(label) for label in labels] == pytest.approx(values, rel=1e-9)


def image_pixels(fig: go.Figure) -> np.ndarray:
    """The RGB pixels of the first image trace."""
    image = next(trace for trace in fig.data if isinstance(trace, go.Image))
    data = base64.b64decode(image.source.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("sigma", SIGMAS)
def test_a_large_tiled_view_uses_the_whole_colour_scale(sigma):
    """At k = 51 the image's brightest pixel has the colour scale's top colour: the colours span the
    block averages shown, not the matrix's peak of 1 that averaging lowers (it was uniformly dark)."""
    fig = cov_plots.covariance_figure(covariance.gaussian(51, sigma, structured=True), height=560)
    pixels = image_pixels(fig).reshape(-1, 3)
    top = lookup_table(style.SEQUENTIAL)[-1]
    assert np.abs(pixels.astype(int) - top).sum(axis=1).min() <= 3


def test_layer_grid_shows_the_centre_block_above_k_15():
    """A k' = 31 transfer preview: 961 x 961 tiled cells in a 170 px panel read as a dot grid."""
    layers = [covariance.gaussian(31, sigma) for sigma in (1.0, 3.0)]
    fig = learned.layer_grid_figure(layers, ["1", "2"])
    assert not fig.layout.shapes and image_pixels(fig).shape[:2] == (31, 31)
    small = learned.layer_grid_figure([covariance.gaussian(9, 1.0)], ["1"])
    assert len(small.layout.shapes) == 2 * (9 - 1) and image_pixels(small).shape[:2] == (81, 81)


def test_depth_panels_have_tile_lines_when_small_and_show_the_centre_block_when_large():
    small = cov_plots.depth_figure([covariance.gaussian(9, 2.0)] * 2, [2.0, 2.0])
    lines = [shape for shape in small.layout.shapes if shape.name == "tile line"]
    assert len(lines) == 2 * 2 * (9 - 1)  # two panels, 8 vertical and 8 horizontal lines each
    assert {shape.xref for shape in lines} == {"x", "x2"}
    large = cov_plots.depth_figure([covariance.gaussian(51, 1.0, structured=True)], [1.0])
    assert not large.layout.shapes
    assert image_pixels(large).shape[:2] == (51, 51)  # the centre pixel's 51 x 51 block


def test_a_pair_wider_than_its_panels_is_drawn_as_averages_on_their_own_range():
    """The Gallery's k = 15 covariances three a row (116 px panels): an i.i.d. scheme's diagonal
    was drawn as a 225-cell heatmap, more cells than pixels, and looked blank."""
    S = torch.eye(225) / 675
    fig = cov_plots.covariance_pair_figure(S, S, panel_px=116)
    pixels = image_pixels(fig).reshape(-1, 3)
    assert image_pixels(fig).shape[:2] == (116, 116)  # 225 cells a side averaged down to the panel
    top = lookup_table(style.SEQUENTIAL)[-1]  # non-negative values: the sequential scale
    assert np.abs(pixels.astype(int) - top).sum(axis=1).min() <= 3
    assert all(isinstance(t, go.Heatmap) for t in cov_plots.covariance_pair_figure(S, S).data)


def centre_dominated(k: int, share: float) -> torch.Tensor:
    """A covariance whose centre pixel holds `share` of the variance, like a NIFF layer's crop: a
    Gaussian bump on the other pixels plus a large variance on the centre one."""
    S = covariance.gaussian(k, 1.0)
    c = k * k // 2
    S[c, c] = share * (k * k - 1) / (1 - share)
    return S


def bar_limits(fig: go.Figure) -> list[tuple]:
    """(lowest, highest, title) of every colour bar."""
    limits = []
    for trace in fig.data:
        if isinstance(trace, go.Heatmap) and trace.showscale is not False:
            limits.append((trace.zmin, trace.zmax, trace.colorbar.title.text))
        elif isinstance(trace, go.Scatter) and trace.marker.showscale:
            limits.append((trace.marker.cmin, trace.marker.cmax, trace.marker.colorbar.title.text))
    return limits


def test_a_centre_pixel_with_half_the_variance_saturates_the_scales_instead_of_setting_them():
    """A NIFF crop's centre pixel held 22-74 % of its variance: on a scale up to it every other
    entry was drawn at the middle colour (the panels read as empty grids)."""
    k = 9
    S = centre_dominated(k, 0.5)
    (lo, hi, title), = bar_limits(learned.layer_grid_figure([S], ["1"]))
    assert lo == 0 and hi < 1 and "saturates; max 40.5" in title  # the centre: 40.5 x the mean variance
    closed = covariance.gaussian(k, 1.0)
    fig = learned.closed_form_figure(S / S.diagonal().mean(), closed, S / S.diagonal().mean() - closed,
                                      sigma=1.0, r=0.1, layer="1")
    shared, difference = bar_limits(fig)
    assert shared[1] <= 1 and "saturates" in shared[2] and "saturates" in difference[2]


@pytest.mark.parametrize("sigma", SIGMAS + (1.0, 3.0))
def test_gaussian_covariances_keep_their_whole_range(sigma):
    layers = [covariance.gaussian(9, sigma), covariance.gaussian(9, 2 * sigma)]
    (lo, hi, title), = bar_limits(learned.layer_grid_figure(layers, ["1", "2"]))
    assert "saturates" not in title and hi == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("side, most_ticks", [(3, 3), (9, 9), (15, 8), (81, 9), (2601, 6)])
def test_pixel_axes_tick_whole_numbers(side, most_ticks):
    step = style.integer_step(side)
    assert isinstance(step, int) and (side - 1) // step + 1 == most_ticks


def test_small_matrices_get_one_tick_per_pixel_not_fractions():
    S = covariance.gaussian(3, 1.0)
    for fig in (cov_plots.block_figure(S, 1, 1), cov_plots.factor_figure(covariance.gaussian_factor(3, 1.0))):
        assert fig.layout.xaxis.dtick == 1 and fig.layout.yaxis.dtick == 1


def test_the_chosen_pixel_is_framed_not_covered_when_it_is_the_only_bright_cell():
    fig = cov_plots.block_figure(covariance.gaussian(9, 0.1), 4, 4)
    assert [type(t) for t in fig.data] == [go.Heatmap]  # no marker drawn over the cell
    (frame,) = fig.layout.shapes
    assert (frame.x0, frame.x1, frame.y0, frame.y1) == (3.5, 4.5, 3.5, 4.5)


def test_log_eigenvalue_axis_labels_minor_ticks_in_full():
    S = covariance.gaussian(9, 0.1, structured=True)
    fig = cov_plots.eigenvalue_figure(S.eigenvalues(), covariance.effective_rank(S))
    assert fig.layout.yaxis.minorloglabels == "complete"  # 0.5 and 0.2, not bare digits 5 and 2
