"""Verdicts name their regime (issue 31): regime.regime_of, the 'some cases' rule of claim 2, the row
that says when intervals lie below 0 but Holm does not refute, the smallest detectable gain, the
regime map end to end at tiny size through the CLI, and the paper suite at tiny size."""

import json

import pandas as pd
import pytest

from convcov_core import regime, stats
from convcov_core import reproduce as R
from convcov_core.cli import main
from convcov_core.reproduce import regimes
from convcov_core.sweep import LocalPool, SweepStore
from convcov_core.train import TrainConfig

S, N, I = R.SUPPORTED, R.NOT_SUPPORTED, R.INCONCLUSIVE


# ---------------------------------------------------------------------------------------------
# What a config measures


@pytest.mark.parametrize("kernel,patch,side,wider", [(9, 2, 14, False), (15, 2, 14, True), (9, 1, 28, False),
                                                    (9, 4, 7, True), (13, 2, 14, False)])
def test_regime_of_reads_the_map_side_a_depthwise_filter_sees(kernel, patch, side, wider):
    config = TrainConfig(dataset="mnist5k", model="convmixer-16/2", kernel_size=kernel, patch_size=patch, epochs=3)
    r = regime.regime_of(config)
    assert (r.kernel, r.map_side, r.wider_than_map) == (kernel, side, wider)  # 28 x 28 digits / patch
    assert (r.width, r.depth, r.image_size, r.n_train) == (16, 2, 28, 4000)
    assert r.steps == 3 * (4000 // 128)  # full batches only
    text = r.describe()
    assert f"{kernel} x {kernel} filters on {side} x {side} maps" in text and f"{r.steps} steps" in text
    assert ("wider than the map" in text) == wider and "mnist5k" in text


def test_a_model_without_square_depthwise_filters_says_so():
    r = regime.regime_of(TrainConfig(dataset="mnist5k", model="cnn-4,4", kernel_size=None, patch_size=None,
                                     max_steps=2))
    assert r.kernel is None and not r.wider_than_map and "no square depthwise filters" in r.describe()


# ---------------------------------------------------------------------------------------------
# Rules


def seeds(*values):
    return dict(enumerate(values))


def test_some_cases_is_supported_by_one_case_that_survives_holm():
    clear = R.superiority(seeds(2.0, 2.2, 1.8, 2.1, 1.9), "a", "b")
    noise = [R.superiority(seeds(0.5, -0.5, 0.2, -0.3, 0.1), "a", "b") for _ in range(4)]
    assert R.settle_some([clear, *noise]) == S
    assert clear["verdict"] == S and all(p["verdict"] == I for p in noise)


def test_some_cases_is_refuted_only_when_every_case_is():
    worse = [R.superiority(seeds(-2.0, -2.2, -1.8, -2.1), "a", "b") for _ in range(3)]
    assert R.settle_some(worse) == N
    assert R.settle_some([*worse, R.superiority(seeds(0.5, -0.5, 0.2, -0.3), "a", "b")]) == I
    assert R.settle_some([]) == I


def test_some_cases_corrects_for_the_number_of_cases():
    """One case with p between alpha / m and alpha: supported alone, not among many."""
    marginal = seeds(1.0, 1.4, 0.5, 1.2, 0.2)  # one-sided p about 0.009
    alone = R.superiority(marginal, "a", "b")
    assert alone["p_support"] < 0.025 and R.settle_some([alone]) == S
    many = [R.superiority(marginal, "a", "b"), *[R.superiority(seeds(0.1, -0.1, 0.0, 0.05, -0.05), "a", "b")
                                                 for _ in range(4)]]
    assert R.settle_some(many) == I


def test_intervals_below_zero_that_holm_does_not_refute_are_said_in_the_row():
    below = [R.superiority(seeds(-1.0, -1.6, -0.4, -1.2, -0.1), "a", "b", f"part {i}") for i in range(3)]
    assert all(p["high"] < 0 for p in below)  # each interval wholly below 0 on its own
    assert R.settle(below) == I  # p about 0.017 each: Holm over three parts refutes none
    note = R.unrefuted_below(below)
    assert note and "3 of 3 tests" in note and "Holm" in note and "inconclusive" in note
    clear = [R.superiority(seeds(-2.0, -2.2, -1.8, -2.1), "a", "b")]
    assert R.settle(clear) == N and R.unrefuted_below(clear) is None


def test_detectable_effect_is_the_inverse_of_seeds_needed():
    for spread in (0.5, 0.68, 1.0):
        n = stats.seeds_needed(1.0, spread)
        assert stats.detectable_effect(spread, n) <= 1.0 < stats.detectable_effect(spread, n - 1)
    assert stats.detectable_effect(None, 5) is None and stats.detectable_effect(1.0, 1) is None


def test_verdict_at_names_the_regime_and_old_reports_keep_their_bare_verdict():
    claim = {"verdict": N, "regime": {"measured": "convmixer-32/8, 11 x 11 filters on 16 x 16 maps"}}
    assert R.verdict_at(claim) == "not supported at convmixer-32/8, 11 x 11 filters on 16 x 16 maps"
    assert R.verdict_at({"verdict": N}) == N


# ---------------------------------------------------------------------------------------------
# The regime map and the paper suite, tiny


def test_regime_map_runs_resumes_and_reports_each_cell_with_its_regime(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path / "home"))
    out = tmp_path / "map"
    argv = ["regimes", "--map", "tiny", "--out", str(out), "--device", "cpu", "--workers", "1", "--quiet"]
    tiny = regimes.build_map("tiny", device="cpu")
    seconds, n_todo = regimes.estimate_seconds(tiny, SweepStore(), LocalPool(1))
    assert seconds > 0 and n_todo == tiny.n_trials == 20
    assert main(argv) == 0
    table = pd.read_csv(out / "cells.csv")
    assert len(table) == 5  # patch 1/2/4, width 4 (8 is the base), sigma_first 0.5 (1.0 is the base)
    assert table["n"].tolist() == [2] * 5 and set(table["helps_holm"]) <= {True, False}
    wide = table.set_index("setting")["wider_than_map"]
    assert wide["patch_size 4"] and not wide["patch_size 1"]  # 12 x 12 images: 3 x 3 maps under 5 x 5 filters
    markdown = (out / "report.md").read_text()
    assert "**k > map**" in markdown and "## Summary" in markdown and "5 x 5 filters on 12 x 12 maps" in markdown
    report = json.loads((out / "report.json").read_text())
    assert report["summary"] == regimes.map_summary(regimes.regime_table(tiny, SweepStore()))
    assert set(report["sweeps"]) == {"patch", "width", "sigma"}
    store = SweepStore()
    keys = {t.key for grid in tiny.sweeps.values() for t in grid.trials()}
    assert len(store.finished(keys)) == tiny.n_trials == 20  # the base cell is shared by the three sweeps
    capsys.readouterr()
    assert main(argv[:-1]) == 0  # again: nothing left to train
    err = capsys.readouterr().err
    assert "done" not in err and "estimate: about 0 s for 0 trial(s) left" in err


def test_paper_suite_at_tiny_size_runs_end_to_end_and_names_its_regime(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path / "home"))
    suite = R.paper_suite(device="cpu", size="tiny")
    assert suite.base.patch_size == 1 and suite.base.kernel_size == 9 and suite.base.dataset_params["color"]
    folder = R.reproduce(suite, out=tmp_path / "paper")
    report = R.load_report(folder)
    assert [c["id"] for c in report["claims"]] == [1, 2, 3, 4, 5, 6]
    assert all(c["regime"]["paper"] for c in report["claims"])
    assert "9 x 9 filters on 32 x 32 maps" in report["claims"][0]["regime"]["measured"]
    assert "textures" in report["claims"][0]["regime"]["measured"]  # no CIFAR-10 here: the colour crops


def test_paper_suite_sizes_keep_the_papers_model_and_maps():
    for name in ("paper", "paper-cut"):
        suite = R.build_suite(name, device="cpu")
        assert suite.base.model == "convmixer-256/8" and suite.base.kernel_size == 9 and suite.base.patch_size == 1
        assert suite.source is not None and suite.source.epochs == suite.base.epochs
    assert R.build_suite("paper", device="cpu").base.epochs >= 10
    with pytest.raises(ValueError, match="unknown paper suite size"):
        R.paper_suite(size="huge")


def test_quick_suite_takes_the_bundled_example_as_claim_3s_source():
    suite = R.build_suite("quick", device="cpu")
    sweeps = R.suite_sweeps(suite)
    assert suite.source is None and sweeps.sources is None
    assert sweeps.frozen_map.inits == ["gaussian"] and sweeps.frozen_map.base.freeze_filters
    assert regime.regime_of(suite.base).map_side >= suite.base.kernel_size  # 11 x 11 filters on 16 x 16 maps
