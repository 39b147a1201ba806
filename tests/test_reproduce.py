"""Reproduction suites: the verdict rules on synthetic differences (every branch), the seed rule,
claim 6's interaction contrast on a made-up effect map, the tiny suite end to end through the CLI as
sweeps (report JSON structure, Markdown, figures, a second run that trains nothing again),
cancelling, bad input, figures."""

import json
from collections import Counter

import pandas as pd
import pytest

from convcov_core import reproduce as R
from convcov_core import stats
from convcov_core.cli import main
from convcov_core.plots import claims as claim_plots
from convcov_core.sweep import LocalPool, SweepStore
from convcov_core.sweep.results import TRIAL_COLUMNS

S, N, I = R.SUPPORTED, R.NOT_SUPPORTED, R.INCONCLUSIVE


def seeds(*values):
    return dict(enumerate(values))


# ---------------------------------------------------------------------------------------------
# Verdict rules on synthetic inputs


def judged(part: dict) -> str:
    """A part's verdict when it is the claim's only part."""
    R.settle([part])
    return part["verdict"]


@pytest.mark.parametrize("diffs,verdict", [
    (seeds(1.0, 1.2, 0.8, 1.1), S),      # clear, every seed agrees
    (seeds(2.0, 2.1, 1.9, -0.1), I),     # t interval (3 df) reaches below 0
    (seeds(3.0, -2.0, 1.0, 0.5), I),     # within noise
    (seeds(-1.0, -1.2, -0.8, -1.1), N),  # significantly the other way
    (seeds(5.0), I),                     # one seed: no estimate of noise
    (seeds(0.0, 0.0, 0.0), I),           # ties
    ({}, I),
])
def test_superiority_rule(diffs, verdict):
    part = R.superiority(diffs, "a", "b")
    assert judged(part) == verdict
    assert part["n"] == len(diffs) and part["test"] == "superiority"


def test_superiority_interval_is_the_95_percent_t_interval():
    part = R.superiority(seeds(1.0, 2.0, 3.0, 4.0), "a", "b")
    se = (5 / 3) ** 0.5 / 2  # sample std of 1..4 is sqrt(5/3), n = 4
    t = 3.182446  # t(0.975, 3)
    assert part["mean"] == pytest.approx(2.5) and part["se"] == pytest.approx(se)
    assert part["low"] == pytest.approx(2.5 - t * se, abs=1e-5)
    assert part["high"] == pytest.approx(2.5 + t * se, abs=1e-5)
    assert part["favour_a"] == 4


@pytest.mark.parametrize("diffs,verdict", [
    (seeds(0.5, -0.2, 0.3, 0.1), S),     # interval above -1
    (seeds(-0.5, -0.6, -0.4, -3.0), I),  # one seed beyond the margin, interval crosses -1
    (seeds(-3.0, -3.2, -2.8, -3.1), N),  # clearly worse than the margin
    (seeds(-0.5, -1.5, 2.0, -4.0), I),   # noisy
    (seeds(0.5), I),
])
def test_non_inferiority_rule(diffs, verdict):
    assert judged(R.non_inferiority(diffs, "a", "b", 1.0)) == verdict


@pytest.mark.parametrize("diffs,verdict", [
    (seeds(0.1, -0.1, 0.2, 0.0), S),     # inside (-1, 1)
    (seeds(3.0, 3.1, 2.9, 3.0), N),      # entirely above 1
    (seeds(-3.0, -3.1, -2.9, -3.0), N),  # entirely below -1
    (seeds(1.0, 0.5, 1.5, 0.8), I),      # straddles the margin
    (seeds(0.1), I),
])
def test_equivalence_rule(diffs, verdict):
    assert judged(R.equivalence(diffs, "a", "b", 1.0)) == verdict


@pytest.mark.parametrize("values,verdict", [
    (seeds(0.95, 0.96, 0.97), S), (seeds(0.5, 0.6, 0.4), N), (seeds(0.8, 0.99, 0.95), I), (seeds(0.99), I)])
def test_above_rule(values, verdict):
    assert judged(R.above(values, 0.9, "r > 0.9")) == verdict


def test_a_claim_is_supported_only_when_every_part_is_and_refuted_after_holm():
    clear = seeds(1.0, 1.2, 0.8, 1.1)
    noisy = seeds(3.0, -2.0, 1.0, 0.5)
    assert R.settle([R.superiority(clear, "a", "b"), R.superiority(clear, "a", "c")]) == S
    assert R.settle([R.superiority(clear, "a", "b"), R.superiority(noisy, "a", "c")]) == I
    assert R.settle([R.superiority(clear, "a", "b"), R.superiority(seeds(-1.0, -1.2, -0.8, -1.1), "a", "c")]) == N
    assert R.settle([]) == I
    # one-sided p = 0.014 refutes a single part (< 0.025) but not one of three (Holm: > 0.025 / 3)
    borderline = R.superiority(seeds(-1.0, -0.5, -1.6, -0.7), "a", "b")
    assert 0.025 / 3 < borderline["p_refute"] < 0.025
    assert R.settle([dict(borderline)]) == N
    assert R.settle([dict(borderline), R.superiority(noisy, "a", "c"), R.superiority(noisy, "a", "d")]) == I


# ---------------------------------------------------------------------------------------------
# Seeds by power; claim 6 on a made-up map


def test_seed_rules_give_the_seeds_their_measured_spread_asks_for():
    for rule, suite in ((R.suites.QUICK_SEEDS, "quick"), (R.suites.FULL_SEEDS, "full")):
        n = stats.seeds_needed(rule.effect, rule.spread, most=rule.most)
        assert rule.count() == n and len(R.build_suite(suite, device="cpu").seeds) == n
        assert rule.statement().startswith(f"{n} seeds: enough to resolve a {rule.effect:g}-point difference")
    capped = R.SeedRule(effect=0.1, spread=5.0, measured="made up", most=12)
    assert capped.count() == 12 and "capped at 12" in capped.statement()


def made_up_map(gain) -> R.SuiteRuns:
    """A tiny suite whose effect map finished with accuracy 50 for default and 50 + gain(k, depth, seed)
    for gaussian in every cell."""
    suite = R.build_suite("tiny", device="cpu")
    grid = R.suite_sweeps(suite).effect_map
    rows = []
    for trial in grid.trials():
        k, model = trial.cell
        depth = int(model.split("/")[1])
        acc = 50.0 + (gain(k, depth, trial.seed) if trial.init == "gaussian" else 0.0)
        rows.append({"kernel_size": k, "model": model, "depth": depth, "init": trial.init, "seed": trial.seed,
                     "status": "ok", "test_acc": acc, "test_acc_raw": acc, "train_acc": acc, "wall_time": 1.0,
                     "run_id": 1, "message": "", "key": trial.key})
    table = pd.DataFrame(rows, columns=[*grid.axes, "depth", *TRIAL_COLUMNS])
    return R.SuiteRuns(suite, None, {}, {}, 0.0, 0.0, 0.0, None, effect_map=grid, map_table=table)


def test_claim_6_reads_the_gain_at_one_end_of_an_axis_minus_the_other_end_seed_by_seed():
    # gain grows by 2 + seed points from k = 3 to 5 and does not change with depth
    claim = R.claim_gain_grows(made_up_map(lambda k, depth, seed: (k - 3) * (1 + seed / 2)))
    assert claim["numbers"]["growth"]["kernel_size"] == {"0": pytest.approx(2.0), "1": pytest.approx(3.0)}
    assert claim["numbers"]["growth"]["model"] == {"0": pytest.approx(0.0), "1": pytest.approx(0.0)}
    kernel, depth = claim["parts"]
    assert kernel["a"] == "5 x 5 filters" and kernel["b"] == "3 x 3 filters" and kernel["mean"] == pytest.approx(2.5)
    assert depth["a"] == "depth 2" and depth["mean"] == pytest.approx(0.0)
    gains = {(row[0], row[1]): row[2] for row in claim["numbers"]["table"]["rows"]}  # per cell, mean over seeds
    assert gains == {("3 x 3 filters", "depth 1"): "+0.00", ("3 x 3 filters", "depth 2"): "+0.00",
                     ("5 x 5 filters", "depth 1"): "+2.50", ("5 x 5 filters", "depth 2"): "+2.50"}
    json.dumps(claim, allow_nan=False)
    # a shrinking gain: the far end's gain is smaller for every seed
    shrinking = R.claim_gain_grows(made_up_map(lambda k, depth, seed: (5 - k) * (1 + seed)))
    assert all(v < 0 for v in shrinking["numbers"]["growth"]["kernel_size"].values())


# ---------------------------------------------------------------------------------------------
# The tiny suite end to end, through the CLI


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports") / "tiny"
    assert main(["reproduce", "--suite", "tiny", "--out", str(out), "--device", "cpu", "--workers", "1",
                 "--quiet"]) == 0
    return out


RECOMPUTE = {
    "superiority": lambda p: R.superiority(p["per_seed"], p["a"], p["b"]),
    "non-inferiority": lambda p: R.non_inferiority(p["per_seed"], p["a"], p["b"], p["margin"]),
    "equivalence": lambda p: R.equivalence(p["per_seed"], p["a"], p["b"], p["margin"]),
    "above": lambda p: R.above(p["per_seed"], p["threshold"], p["statement"]),
}


def test_tiny_report_json_has_every_claim_with_numbers_and_verdicts(tiny_report):
    report = json.loads((tiny_report / R.REPORT_JSON).read_text())
    assert report["suite"] == "tiny" and report["format"] == R.REPORT_FORMAT
    assert report["device"] == "cpu" and report["wall_time_s"] > 0 and report["created"]
    assert set(report["rules"]) == {"interval", "superiority", "non-inferiority", "equivalence", "above",
                                    "some cases", "combined"}
    assert [c["id"] for c in report["claims"]] == [1, 2, 3, 4, 5, 6]
    suite = R.build_suite("tiny")
    sweeps = R.suite_sweeps(suite)
    stages = Counter(r["stage"] for r in report["runs"])
    assert stages == {"claim 3 source": 2, "claims 1-4": 10, "claim 6 map": len(sweeps.effect_map.trials()),
                      "claim 2 cases": len(sweeps.frozen_map.trials()), "claim 5 CNN": 2}
    shared = {t.key for t in sweeps.effect_map.trials()} & {t.key for t in [*sweeps.sources.trials(),
                                                                              *sweeps.target.trials()]}
    assert len(shared) == 6  # the map's (k, depth) cells of the sources and of the target, trained once
    frozen_shared = {t.key for t in sweeps.frozen_map.trials()} & {t.key for t in sweeps.target.trials()}
    assert len(frozen_shared) == 2  # the frozen map's cell at the target's setting: its gaussian-frozen trials
    assert R.suite_runs(suite) == sum(stages.values()) - len(shared) - len(frozen_shared)
    assert all(r["status"] == "ok" for r in report["runs"])
    assert [p["test"] for c in report["claims"][:4] for p in c["parts"]] == [
        "superiority", *["superiority"] * 4, "superiority", "non-inferiority", "superiority"]
    assert len(report["claims"][1]["parts"]) == len(sweeps.effect_map.cells())  # main setting + the other cells
    assert [p["test"] for p in report["claims"][4]["parts"]] == ["above", "superiority", "superiority"] * 2
    for claim in report["claims"]:
        assert claim["verdict"] in R.VERDICTS and claim["our_number"] and claim["setup"]
        recomputed = [RECOMPUTE[part["test"]](part) for part in claim["parts"]]
        settle = R.settle_some if claim["id"] == 2 else R.settle
        assert settle(recomputed) == claim["verdict"]  # the stored verdicts follow the rule from the stored numbers
        assert [p["verdict"] for p in recomputed] == [p["verdict"] for p in claim["parts"]]
    claim4 = report["claims"][3]
    assert len(claim4["numbers"]["layers"]) == 2 and all(len(v) == 2 for v in claim4["numbers"]["sigma"].values())
    claim5 = report["claims"][4]
    assert len(claim5["figure"]["groups"]) == 3 and claim5["figure"]["hline"]["y"] == R.CNFA_THRESHOLD
    assert set(report["claims"][1]["figure"]["categories"]) == {"default", "gaussian-frozen", "default-frozen"}
    claim6 = report["claims"][5]
    assert [p["test"] for p in claim6["parts"]] == ["superiority"] * 2  # kernel size, depth
    assert len(claim6["numbers"]["table"]["rows"]) == 4 and claim6["figure"]["hline"]["y"] == 0
    assert report["settings"]["effect_map"] == {"kernel_size": [3, 5], "model": ["convmixer-8/1", "convmixer-8/2"]}


def test_a_second_run_of_the_suite_trains_only_the_cnns_again(tiny_report, tmp_path):
    """Every trial is stored under its key: the same suite again reads them from the run store."""
    suite = R.build_suite("tiny", device="cpu")
    assert R.estimate_seconds(suite, LocalPool(1), SweepStore())[1] == 2  # the CNNs: they always train
    events = []
    assert R.reproduce("tiny", out=tmp_path / "again", device="cpu", callback=events.append) is not None
    assert {e.variant.split(" ")[0] + " " + e.variant.split(" ")[1] for e in events} == {"claim 5"}
    first, again = (R.load_report(f) for f in (tiny_report, tmp_path / "again"))
    assert (first["runs_trained"], again["runs_trained"]) == (first["runs_total"], 2)  # again: the 2 CNNs
    assert f"2 of its {first['runs_total']} runs were trained in this call" in R.provenance(again)
    assert "read from the run store" not in R.provenance(first)
    for a, b in zip(first["claims"][:4], again["claims"][:4]):
        assert a["parts"] == b["parts"]
    assert first["claims"][5]["numbers"] == again["claims"][5]["numbers"]


def test_tiny_report_markdown_and_figures(tiny_report):
    text = (tiny_report / R.REPORT_MD).read_text()
    assert text.startswith("# Paper claims: tiny suite")
    assert ("| # | Claim | Our number | Verdict | Regime measured | The paper's regime |" in text
            and "## How verdicts are decided" in text)
    assert "at this regime" in text and "5 x 5 filters on 6 x 6 maps" in text
    assert "Seeds:" not in text  # the tiny suite's two seeds follow no rule
    for n in range(1, 7):
        assert f"## Claim {n}:" in text and f"![Claim {n}](claim{n}.png)" in text
        assert (tiny_report / f"claim{n}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wall time" in text and "## Runs" in text


def test_reports_are_found_and_loaded(tiny_report):
    found = R.find_reports([tiny_report.parent])
    assert [folder for folder, _ in found] == [tiny_report]
    assert R.load_report(tiny_report)["suite"] == "tiny"


def test_report_without_matplotlib_says_so(tiny_report, tmp_path, monkeypatch):
    monkeypatch.setattr(claim_plots, "can_draw_png", lambda: False)
    R.write_report(R.load_report(tiny_report), tmp_path)
    assert not list(tmp_path.glob("*.png"))
    assert "matplotlib is not installed" in (tmp_path / R.REPORT_MD).read_text()


def test_stop_request_cancels_the_suite_without_a_report(tmp_path):
    asked = []

    def stop_at_the_map(event):
        asked.append(event)
        return "stop" if event.variant.startswith("claim 6 map") else None

    store = SweepStore(tmp_path / "runs.db")
    assert R.reproduce("tiny", out=tmp_path / "r", device="cpu", callback=stop_at_the_map, store=store) is None
    assert not (tmp_path / "r" / R.REPORT_JSON).exists()
    n_runs = R.suite_runs(R.build_suite("tiny"))
    assert {e.n_runs for e in asked} == {n_runs} and asked[0].run_index == 0
    assert max(e.run_index for e in asked) < n_runs
    # the map's first run follows the 2 sources and 8 target trials; its cells that repeat them are not runs
    first_map = next(e for e in asked if e.variant.startswith("claim 6 map"))
    assert first_map.run_index == 2 + 8


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("argv,words", [
    (["reproduce", "--suite", "huge"], "invalid choice"),
    (["reproduce", "--suite", "tiny", "--dataset", "nope"], "unknown dataset"),
    (["reproduce", "--suite", "tiny", "--device", "gpu"], "'gpu'"),
])
def test_cli_bad_arguments_exit_2_with_one_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_cli_prints_the_estimate_of_what_is_left_before_it_trains(tmp_path, monkeypatch, capsys):
    def training(*args, **kwargs):
        raise RuntimeError("training starts here")

    monkeypatch.setattr(R, "reproduce", training)
    db = tmp_path / "runs.db"
    assert main(["reproduce", "--suite", "tiny", "--device", "cpu", "--workers", "1", "--db", str(db),
                 "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.splitlines()
    suite = R.build_suite("tiny", device="cpu")
    estimate = next(n for n, line in enumerate(err) if line.startswith("estimate: about "))
    assert f"for {R.suite_runs(suite)} training run(s) left" in err[estimate]
    assert "training starts here" in err[estimate + 1]
    seconds, n_todo = R.estimate_seconds(suite, LocalPool(1), SweepStore(db))
    assert seconds > 0 and n_todo == R.suite_runs(suite)


def test_cli_out_that_is_a_file_exits_2(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["reproduce", "--suite", "tiny", "--out", str(target), "--quiet"]) == 2
    assert "is a file" in capsys.readouterr().err


def test_load_report_refuses_other_json(tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    with pytest.raises(ValueError, match="no report.json"):
        R.load_report(folder)
    (folder / R.REPORT_JSON).write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a convcov claims report"):
        R.load_report(folder)
    assert R.find_reports([tmp_path]) == []


# ---------------------------------------------------------------------------------------------
# Figures


def test_claim_figures_draw_both_kinds():
    paired = {"kind": "paired", "title": "t", "ylabel": "acc", "categories": ["a", "b"], "seeds": [0, 1, 2],
              "values": {"a": [1.0, 2.0, 3.0], "b": [2.0, 3.0, None]}}
    fig = claim_plots.claim_figure(paired)
    assert len(fig.data) == 3 + 1  # one line per seed, then the means with error bars
    assert list(fig.data[-1].y) == [2.0, 2.5]
    layers = {"kind": "layers", "title": "t", "xlabel": "layer", "ylabel": "r", "layers": ["1", "2"],
              "groups": [{"name": "trained", "per_seed": {"0": [0.9, 0.8], "1": [0.7, 0.6]}},
                         {"name": "schedule", "per_seed": {"": [1.0, 2.0]}, "dash": True}],
              "hline": {"y": 0.9, "label": "0.9"}}
    fig = claim_plots.claim_figure(layers)
    assert [t.name for t in fig.data] == ["trained", "trained", "trained (mean)", "schedule", "0.9"]
    assert list(fig.data[2].y) == pytest.approx([0.8, 0.7])
    assert not fig.layout.annotations  # the line is named in the legend, not over the markers
    assert fig.layout.legend.y == -0.3 and fig.layout.legend.yanchor == "top"  # under the axis title
    with pytest.raises(ValueError, match="unknown figure kind"):
        claim_plots.claim_figure({"kind": "pie"})
