"""Tests for convcov_core.frequency and its figures: the Frequency View's filters (schemes, runs,
checkpoints), spectra, effective sizes, half-max frequencies and the sigma curve."""

import math

import pytest
import torch

from convcov_core import covariance, frequency, train
from convcov_core.plots import analysis as figures


def fake_run(layers: int = 2, k: int = 5, with_weights: bool = True) -> train.RunResult:
    names = [f"blocks.{i}.0.fn.0" for i in range(layers)]
    weights = {f"{n}.weight": torch.randn(6, 1, k, k) for n in names}
    covs = [covariance.gaussian(k, 1.0 + i) for i in range(layers)]
    return train.RunResult(config=train.TrainConfig(kernel_size=k), history={}, final={}, status="ok",
                           message="", wall_time=0.0, device="cpu", layer_names=names,
                           covariances=covs, state_dict=weights if with_weights else None, id=3)


def test_source_layers_of_schemes_and_runs():
    (name, filters), = frequency.source_layers("gaussian", kernel_size=7, n=10, sigma=2.0)
    assert name == "Gaussian σ = 2" and filters.shape == (10, 7, 7)
    run = fake_run()
    trained = frequency.source_layers("trained", run=run)
    assert [n for n, _ in trained] == run.layer_names
    assert torch.equal(trained[0][1], run.state_dict["blocks.0.0.fn.0.weight"][:, 0].double())
    learned = frequency.source_layers("learned", n=12, run=run)
    assert [f.shape for _, f in learned] == [(12, 5, 5)] * 2


@pytest.mark.parametrize("source, run, message", [
    ("fourier", None, "unknown filter source"),
    ("learned", None, "needs a saved run"),
    ("trained", fake_run(with_weights=False), "saved no weights"),
])
def test_source_layers_bad_requests(source, run, message):
    with pytest.raises(ValueError, match=message):
        frequency.source_layers(source, run=run)


def test_frequency_summary_of_delta_filters_is_flat_and_size_one():
    delta = torch.zeros(3, 5, 5)
    delta[:, 2, 2] = 1.0
    summary = frequency.frequency_summary([("delta", delta)], size=16)
    assert torch.allclose(summary.spectra[0], torch.ones(16, 16, dtype=torch.float64))
    assert torch.allclose(summary.profiles[0], torch.ones_like(summary.profiles[0]))
    assert summary.effective_sizes[0].tolist() == [1, 1, 1]
    assert summary.radii[-1] == 8 and summary.kernel_size == 5


def test_frequency_summary_spectrum_uses_the_first_filters_and_sizes_use_all():
    filters = torch.ones(4, 3, 3)
    filters[:2] = 0.0
    filters[:2, 1, 1] = 1.0  # two deltas, then two constant filters
    summary = frequency.frequency_summary([("mixed", filters)], size=8, spectrum_filters=2)
    assert torch.allclose(summary.spectra[0], torch.ones(8, 8, dtype=torch.float64))
    assert summary.effective_sizes[0].tolist() == [1, 1, 3, 3]


def test_closed_form_filters_fill_the_window_whatever_sigma():
    for sigma in (0.3, 1.0, 3.0, 10.0):
        view = frequency.frequency_view("gaussian", kernel_size=9, n=256, sigma=sigma)
        assert view.table()[0]["mean effective size"] == 9.0
        assert view.at_energy(0.3).table()[0]["mean effective size"] < 9


def test_the_closed_forms_half_max_frequency_falls_as_one_over_sigma():
    curve = frequency.sigma_curve(31, [0.3, 1.0, 2.0, 3.0, 5.0], n=256, size=128)
    assert curve.half_max[0] is None and curve.default_half_max is None  # white-noise-like
    # sampled filters: mean |FFT| ~ sqrt(power spectrum) = exp(-pi^2 sigma^2 f^2), half at
    # f = sqrt(ln 2) / (pi sigma); the 31 x 31 window widens the spectrum a little
    for sigma, half in zip(curve.sigmas[1:], curve.half_max[1:]):
        assert half == pytest.approx(math.sqrt(math.log(2)) / (math.pi * sigma), rel=0.15)
    assert curve.half_max[1:] == sorted(curve.half_max[1:], reverse=True)
    with pytest.raises(ValueError):
        frequency.sigma_curve(9, [0.0])


def test_frequency_view_places_a_runs_layers_at_their_fitted_sigma():
    view = frequency.frequency_view("learned", n=64, run=fake_run())
    assert [f["layer"] for f in view.fitted] == ["blocks.0.0.fn.0", "blocks.1.0.fn.0"]
    assert [f["sigma"] for f in view.fitted] == pytest.approx([1.0, 2.0], rel=1e-3)
    assert all(f["r"] == pytest.approx(1.0) for f in view.fitted)
    assert all(1 <= f["mean effective size"] <= 5 for f in view.fitted)
    assert view.fitted[1]["half-max frequency"] < view.fitted[0]["half-max frequency"]  # sigma 2 vs 1
    assert view.summary.kernel_size == 5 and view.summary.names == fake_run().layer_names
    assert frequency.frequency_view("default", kernel_size=3, n=16).fitted == []


@pytest.mark.parametrize("source", ["learned", "trained"])
def test_a_view_at_another_energy_equals_the_view_computed_at_it(source):
    torch.manual_seed(0)  # fake_run's trained filters
    run = fake_run()
    default = frequency.frequency_view(source, n=64, run=run, seed=3)
    moved = default.at_energy(0.5)
    if source == "learned":  # smooth filters sampled with seed 3: smaller at half the energy
        sizes = [f["mean effective size"] for f in moved.fitted]
        assert sizes != [f["mean effective size"] for f in default.fitted] and max(sizes) < 5
    direct = frequency.frequency_view(source, n=64, run=run, seed=3, energy=0.5)
    assert moved.summary.energy == direct.summary.energy == 0.5 and moved.fitted == direct.fitted
    for a, b in zip(moved.summary.effective_sizes, direct.summary.effective_sizes, strict=True):
        assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(moved.summary.spectra, direct.summary.spectra, strict=True))


def test_a_smooth_sources_profile_falls_below_the_flat_white_noise_reference():
    gaussian = frequency.frequency_view("gaussian", kernel_size=9, n=512, sigma=2.0, seed=1)
    radii, white = gaussian.summary.radii, gaussian.white_noise / gaussian.white_noise.max()
    smooth = gaussian.summary.profiles[0] / gaussian.summary.profiles[0].max()
    high = radii >= 0.4 * gaussian.summary.size  # 0.4-0.5 cycles per pixel
    assert white[high].min() > 0.7 and smooth[high].max() < 0.2  # white noise stays up, Gaussian falls
    assert gaussian.at_energy(0.5).white_noise is gaussian.white_noise
    assert frequency.frequency_view("default", kernel_size=9, n=64).white_noise is None
    trained = frequency.frequency_view("trained", run=fake_run(), seed=1)
    assert trained.white_noise.shape == trained.summary.profiles[0].shape  # at the run's own k


def test_a_views_table_has_one_row_per_layer_with_sizes_bandwidth_and_fits():
    view = frequency.frequency_view("learned", n=256, run=fake_run(), seed=0, energy=0.5)
    rows = view.table()
    assert [r["layer"] for r in rows] == fake_run().layer_names
    assert [r["fitted sigma"] for r in rows] == pytest.approx([1.0, 2.0], rel=1e-3)
    for row, sizes in zip(rows, view.summary.effective_sizes):
        assert row["effective size 10%"] <= row["mean effective size"] <= row["effective size 90%"] <= 5
        assert row["share at full size"] == pytest.approx(float((sizes == 5).double().mean()))
    assert rows[1]["half-max frequency"] < rows[0]["half-max frequency"]  # sigma 2 smoother than 1
    gaussian = frequency.frequency_view("gaussian", kernel_size=9, n=64, sigma=2.0).table()
    assert "fitted sigma" not in gaussian[0] and gaussian[0]["share at full size"] == 1.0


def test_effective_size_figure_names_each_layers_mean_and_grows_with_its_legend():

    one = figures.effective_size_figure([torch.tensor([9, 9, 7, 9])], ["Gaussian σ = 2"],
                                        kernel_size=9, energy=0.9)
    assert [t.name for t in one.data] == ["Gaussian σ = 2: 8.5"] and one.layout.showlegend
    assert list(one.data[0].y) == [0, 0, 0, 0.25, 0.75]  # shares at sides 1, 3, 5, 7, 9
    names = [f"blocks.{i}" for i in range(8)]
    eight = figures.effective_size_figure([torch.full((4,), 3)] * 8, names, kernel_size=9, energy=0.9)
    assert eight.data[7].name == "blocks.7: 3.0"
    assert eight.layout.legend.orientation == "v" and eight.layout.legend.y < 0  # one column below
    assert eight.layout.height - one.layout.height == 7 * figures.LEGEND_ROW_PX  # seven more rows


def test_radial_profile_figure_draws_the_white_noise_reference_dashed():

    radii, profile = torch.arange(5.0), torch.tensor([4.0, 3.0, 2.0, 1.0, 0.5])
    alone = figures.radial_profile_figure(radii, [profile], ["Gaussian σ = 2"], size=10)
    assert [t.name for t in alone.data] == ["Gaussian σ = 2: 0.20"]  # half of 4 at ring 2, 0.2 cycles/px
    assert alone.layout.legend.title.text.startswith("falls to half")
    both = figures.radial_profile_figure(radii, [profile], ["Gaussian σ = 2"], size=10,
                                         white_noise=torch.full((5,), 3.0))
    reference = both.data[1]
    assert reference.name == f"{figures.WHITE_NOISE_LABEL}: above 0.5" and reference.line.dash == "dash"
    assert list(reference.y) == [1.0] * 5 and both.layout.showlegend  # divided by its own max


def test_spectra_figure_labels_only_the_outer_panels():

    fig = figures.spectra_figure([torch.rand(8, 8) for _ in range(6)], [f"layer {i}" for i in range(6)])
    xs = [fig.layout[f"xaxis{n + 1 if n else ''}"].showticklabels for n in range(6)]
    ys = [fig.layout[f"yaxis{n + 1 if n else ''}"].showticklabels for n in range(6)]
    assert xs == [False, False, True, True, True, True]  # the last panel in each column
    assert ys == [True, False, False, False, True, False]  # the first column
    with pytest.raises(ValueError):
        figures.spectra_figure([torch.rand(8, 8)], ["a", "b"])


def test_sigma_curve_figure_places_a_runs_layers_by_smoothness():

    curve = frequency.SigmaCurve(9, [0.3, 1.0, 2.0], [None, 0.28, 0.15], None)
    fitted = [{"layer": "a", "sigma": 0.6, "r": 0.7, "half-max frequency": 0.32},
              {"layer": "b", "sigma": 1.5, "r": 0.6, "half-max frequency": None}]  # white-noise-like
    fig = figures.sigma_curve_figure(curve, current_sigma=2.0, fitted=fitted)
    closed, default, layers = fig.data
    assert list(closed.y) == [None, 0.28, 0.15]  # a gap where the closed form never falls to half
    assert list(layers.x) == [0.6] and list(layers.y) == [0.32]
    assert list(default.y) == [0.5, 0.5]  # the white-noise reference at the 0.5 cycles/pixel limit
    assert "never falls to half" in default.name  # in the legend: the σ line cannot cross it
    assert [(a.text, a.xanchor) for a in fig.layout.annotations] == [("σ = 2 ", "right")]  # the side with room
    low = figures.sigma_curve_figure(curve, current_sigma=0.3, fitted=fitted)
    assert [(a.text, a.xanchor) for a in low.layout.annotations] == [(" σ = 0.3", "left")]
    assert fig.layout.yaxis.title.text == "half-max frequency (cycles/pixel)"
