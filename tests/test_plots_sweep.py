"""Sweep figures: the effect heatmap, the lines with error bars and the grid of cells show exactly the
numbers of the tables they are drawn from, stay readable on small and large grids, and refuse
tables with more than one row per cell."""

import math

import numpy as np
import pandas as pd
import pytest

from convcov_core.plots import sweep as figures
from convcov_core.sweep import Sweep, cell_effects
from convcov_core.train import TrainConfig

SEEDS = [0, 1, 2]


def synthetic(kernel_sizes=(3, 5, 9), epochs=(1, 2), freeze=(False, True), gain=1.0):
    """A sweep and its cell_effects from made-up accuracies: gaussian ahead by gain x k / 3 points
    (plus seed noise), so the effect grows with the kernel size."""
    axes = {"kernel_size": list(kernel_sizes), "epochs": list(epochs), "freeze_filters": list(freeze)}
    grid = Sweep("synthetic", TrainConfig(), axes, ["default", "gaussian"], SEEDS)
    rng = np.random.default_rng(0)
    rows = []
    for cell in grid.cells():
        for seed in SEEDS:
            base = 80 + rng.normal()
            for init, shift in (("default", 0.0), ("gaussian", gain * cell[0] / 3 + rng.normal(0, 0.5))):
                rows.append({**dict(zip(axes, cell)), "init": init, "seed": seed, "test_acc": base + shift})
    return grid, cell_effects(grid, pd.DataFrame(rows))


def at(effects, **values):
    keep = np.ones(len(effects), dtype=bool)
    for axis, value in values.items():
        keep &= (effects[axis] == value).to_numpy()
    return effects[keep]


def test_heatmap_colours_text_and_stars_match_the_effects_table():
    _, effects = synthetic()
    shown = at(effects, freeze_filters=True)
    fig = figures.effect_heatmap(shown, "kernel_size", "epochs", titles={"kernel_size": "kernel size"})
    heat, stars = fig.data
    assert list(fig.layout.xaxis.ticktext) == ["3", "5", "9"] and list(fig.layout.yaxis.ticktext) == ["1", "2"]
    assert fig.layout.xaxis.title.text == "kernel size" and fig.layout.yaxis.title.text == "epochs"
    z = np.asarray(heat.z, dtype=float)
    for _, row in shown.iterrows():
        j, i = [1, 2].index(row["epochs"]), [3, 5, 9].index(row["kernel_size"])
        assert z[j, i] == pytest.approx(row["diff_mean"])
        assert heat.text[j][i] == (f"{figures.signed(row['diff_mean'])}<br>"
                                   f"[{figures.signed(row['diff_low'])}, {figures.signed(row['diff_high'])}]")
    top = float(np.abs(shown["diff_mean"]).max())
    assert (heat.zmin, heat.zmax) == (-top, top) and heat.colorscale[0][1] != heat.colorscale[-1][1]
    winners = shown[shown["winner"].notna()]
    assert 0 < len(winners) == len(stars.x) and list(stars.customdata) == list(winners["winner"])
    columns = [[3, 5, 9].index(k) for k in winners["kernel_size"]]
    assert [round(x) for x in stars.x] == columns  # each star sits in its cell


def test_heatmap_signs_use_a_true_minus_and_cells_without_pairs_stay_blank():
    _, effects = synthetic(gain=-1.0)
    shown = at(effects, freeze_filters=False, epochs=1).copy()
    shown.loc[shown.index[0], ["diff_mean", "diff_low", "diff_high", "n"]] = [None, None, None, 0]
    fig = figures.effect_heatmap(shown, "kernel_size")
    heat = fig.data[0]
    assert math.isnan(heat.z[0][0]) and heat.text[0][0] == ""
    assert heat.text[0][1].startswith("\u2212") and "-" not in heat.text[0][1]
    assert list(fig.layout.yaxis.ticktext) == [""]  # one row without an axis


@pytest.mark.parametrize("top", [0.004, 0.3, 1.0, 2.6, 37.0, 180.0])
def test_colour_bar_ticks_are_distinct_round_and_inside_the_range(top):
    values, texts = figures.colour_ticks(top)
    assert len(set(texts)) == len(texts) >= 5
    assert values[0] >= -top - 1e-12 and values[-1] <= top + 1e-12 and 0.0 in values


def test_wide_grids_show_the_mean_only_and_tall_grids_grow():
    _, small = synthetic(kernel_sizes=(3, 5))
    _, wide = synthetic(kernel_sizes=tuple(range(3, 33, 2)), epochs=tuple(range(1, 11)))
    small_fig = figures.effect_heatmap(at(small, freeze_filters=True), "kernel_size", "epochs")
    wide_fig = figures.effect_heatmap(at(wide, freeze_filters=True), "kernel_size", "epochs")
    assert "<br>" in small_fig.data[0].text[0][0]
    assert all("<br>" not in text for row in wide_fig.data[0].text for text in row)
    assert wide_fig.data[0].textfont.size < small_fig.data[0].textfont.size
    assert wide_fig.layout.height > small_fig.layout.height
    assert len(wide_fig.data[0].colorbar.ticktext) == len(set(wide_fig.data[0].colorbar.ticktext))


def test_lines_have_the_effects_with_their_intervals_one_line_per_value_and_a_panel_per_facet():
    _, effects = synthetic()
    fig = figures.effect_lines(effects, "kernel_size", "epochs", "freeze_filters",
                               titles={"freeze_filters": "filters"})
    assert len(fig.data) == 4  # 2 epochs x 2 panels
    assert [a.text for a in fig.layout.annotations] == ["filters: False", "filters: True"]
    assert [t.name for t in fig.data if t.showlegend] == ["1", "2"]
    for trace in fig.data:
        panel = 0 if trace.xaxis == "x" else 1
        rows = at(effects, epochs=int(trace.name), freeze_filters=bool(panel))
        assert list(trace.y) == pytest.approx(list(rows["diff_mean"]))
        assert list(trace.error_y.array) == pytest.approx(list(rows["diff_high"] - rows["diff_mean"]))
        assert list(trace.error_y.arrayminus) == pytest.approx(list(rows["diff_mean"] - rows["diff_low"]))
        assert [round(x) for x in trace.x] == [0, 1, 2]  # dodged a little, each at its kernel size
    assert fig.layout.xaxis.ticktext == ("3", "5", "9") and fig.layout.xaxis2.ticktext == ("3", "5", "9")
    assert fig.data[0].x[0] != fig.data[1].x[0]  # the two lines' error bars do not hide each other


def test_lines_without_line_or_panel_axes_draw_one_line_without_a_legend():
    _, effects = synthetic()
    fig = figures.effect_lines(at(effects, epochs=2, freeze_filters=False), "kernel_size")
    (trace,) = fig.data
    assert not trace.showlegend and list(trace.x) == [0, 1, 2]


def test_figures_refuse_more_than_one_row_per_cell():
    _, effects = synthetic()
    with pytest.raises(ValueError, match="more than one row per cell"):
        figures.effect_heatmap(effects, "kernel_size", "epochs")
    with pytest.raises(ValueError, match="no cells"):
        figures.effect_lines(effects.iloc[:0], "kernel_size")


def test_progress_grid_shows_finished_of_total_per_cell():
    counts = pd.DataFrame([{"kernel_size": k, "freeze_filters": f, "n_total": 6, "n_finished": n, "n_failed": failed}
                           for (k, f), n, failed in zip([(3, "trained"), (5, "trained"), (3, "frozen"), (5, "frozen")],
                                                        [6, 2, 0, 6], [0, 0, 0, 1])])
    fig = figures.progress_grid(counts, ["freeze_filters", "kernel_size"], titles={"freeze_filters": "filters"})
    heat = fig.data[0]
    assert list(fig.layout.xaxis.ticktext) == ["3", "5"]
    assert list(fig.layout.yaxis.ticktext) == ["filters trained", "filters frozen"]
    assert np.asarray(heat.z, dtype=float).tolist() == [[1.0, 2 / 6], [0.0, 1.0]]
    assert [list(row) for row in heat.text] == [["6/6", "2/6"], ["0/6", "6/6<br>1 failed"]]


def test_progress_grid_of_a_sweep_without_axes_is_one_cell():
    counts = pd.DataFrame([{"n_total": 4, "n_finished": 1, "n_failed": 0}])
    assert [list(row) for row in figures.progress_grid(counts, []).data[0].text] == [["1/4"]]
