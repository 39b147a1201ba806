"""A sweep's cells and the feature maps their filters see: cell_effects carries each cell's map side
and marks the cells whose k x k filters are wider than their map (regime.regime_of), the figures,
the CLI's effect table and its CSV/JSON effects file show the mark; no training runs here (the
trials are made-up accuracies, or pending)."""

import numpy as np
import pandas as pd

from convcov_core.cli import main
from convcov_core.plots import sweep as figures
from convcov_core.regime import regime_of
from convcov_core.sweep import Sweep, SweepStore, cell_effects
from convcov_core.sweep.results import WIDER_THAN_MAP_NOTE, cell_maps
from convcov_core.train import TrainConfig

#: ConvMixer-8/1 with patch 2 on mnist5k's 28 x 28 digits: 14 x 14 feature maps.
BASE = TrainConfig(model="convmixer-8/1", dataset="mnist5k", patch_size=2, kernel_size=9, epochs=1, max_steps=2,
                   batch_size=16)
SEEDS = [0, 1, 2]


def made_up(grid: Sweep) -> pd.DataFrame:
    """A trial table of made-up accuracies: gaussian 1 point ahead, plus seed noise."""
    rng = np.random.default_rng(0)
    rows = []
    for cell in grid.cells():
        for seed in grid.seeds:
            base = 80 + rng.normal()
            for init, shift in (("default", 0.0), ("gaussian", 1.0 + rng.normal(0, 0.3))):
                rows.append({**dict(zip(grid.axes, cell)), "init": init, "seed": seed, "test_acc": base + shift})
    return pd.DataFrame(rows)


def k_grid(**axes) -> Sweep:
    return Sweep("maps", BASE, {"kernel_size": [9, 15], **axes}, ["default", "gaussian"], SEEDS).validate()


def test_cells_whose_filters_are_wider_than_their_map_are_marked():
    grid = k_grid()
    effects = cell_effects(grid, made_up(grid))
    assert effects[["kernel_size", "map_side", "wider_than_map"]].to_dict("records") == [
        {"kernel_size": 9, "map_side": 14, "wider_than_map": False},
        {"kernel_size": 15, "map_side": 14, "wider_than_map": True}]
    for k in (9, 15):  # the lead's regime_of decides, not a rule of the sweep's own
        assert regime_of(BASE.replace(kernel_size=k)).wider_than_map == (k == 15)


def test_the_map_follows_the_patch_size_and_the_data_of_each_cell():
    grid = k_grid(patch_size=[1, 2], dataset=["mnist5k", "textures"])
    maps = cell_maps(grid)
    assert maps[(15, 1, "mnist5k")] == (28, False) and maps[(15, 2, "mnist5k")] == (14, True)
    assert maps[(15, 2, "textures")] == (16, False)  # textures: 32 x 32 crops
    effects = cell_effects(grid, made_up(grid))
    marked = effects[effects["wider_than_map"]]
    assert marked[["kernel_size", "patch_size", "dataset"]].to_dict("records") == [
        {"kernel_size": 15, "patch_size": 2, "dataset": "mnist5k"}]


def test_a_cell_whose_map_cannot_be_told_is_left_unmarked():
    grid = Sweep("nodata", BASE.replace(dataset="cifar10", data_root="/nonexistent"), {"kernel_size": [9, 15]},
                 ["default", "gaussian"], SEEDS)
    effects = cell_effects(grid, made_up(grid))
    assert effects["map_side"].isna().all() and not effects["wider_than_map"].any()


def test_the_heatmap_and_the_lines_mark_the_cells_wider_than_their_map():
    grid = k_grid(epochs=[1, 2])
    effects = cell_effects(grid, made_up(grid))
    fig = figures.effect_heatmap(effects, "kernel_size", "epochs")
    heat, marks = fig.data[0], fig.data[-1]
    assert [row[1].endswith(f"<i>{figures.WIDE_MARK}</i>") for row in heat.text] == [True, True]
    assert not any(figures.WIDE_MARK in row[0] for row in heat.text)
    assert marks.name == figures.WIDE_LEGEND and marks.showlegend and [round(x) for x in marks.x] == [1, 1]
    assert "14 x 14 feature map" in marks.customdata[0] and "14 x 14" in heat.customdata[0][1]
    unmarked = figures.effect_heatmap(effects[effects["kernel_size"] == 9], "kernel_size", "epochs")
    assert len(unmarked.data) == 2 and not any(t.name == figures.WIDE_LEGEND for t in unmarked.data)
    lines = figures.effect_lines(effects, "kernel_size", "epochs")
    assert [list(t.marker.symbol) for t in lines.data] == [["circle", "circle-open"]] * 2


def test_cli_show_has_a_k_over_map_column_and_its_effects_file_the_columns(tmp_path, capsys):
    db = tmp_path / "runs.db"
    grid = k_grid()
    SweepStore(db).register(grid, grid.trials())  # nothing run: every trial pending
    assert main(["sweep", "show", "maps", "--db", str(db), "--csv", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    header, *rows = [line for line in out.splitlines() if "gaussian" in line or "scheme" in line]
    assert "map" in header and "k > map" in header
    assert [("k > map" in row, "14 x 14" in row) for row in rows] == [(False, True), (True, True)]
    assert out.rstrip().endswith(WIDER_THAN_MAP_NOTE + ".")
    written = pd.read_csv(tmp_path / "t.effects.csv")
    assert list(written["map_side"]) == [14, 14] and list(written["wider_than_map"]) == [False, True]
    assert main(["sweep", "show", "maps", "--db", str(db), "--json", str(tmp_path / "t.json")]) == 0
    assert pd.read_json(tmp_path / "t.effects.json")["wider_than_map"].tolist() == [False, True]
