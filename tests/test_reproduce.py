"""Reproduction suites: the verdict rules on synthetic differences (every branch), the tiny suite end
to end through the CLI (report JSON structure, Markdown, figures), cancelling, bad input, figures."""

import json

import pytest

from convcov_core import reproduce as R
from convcov_core.cli import main
from convcov_core.plots import claims as claim_plots

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
# The tiny suite end to end, through the CLI


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports") / "tiny"
    assert main(["reproduce", "--suite", "tiny", "--out", str(out), "--device", "cpu", "--quiet"]) == 0
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
                                    "combined"}
    assert [c["id"] for c in report["claims"]] == [1, 2, 3, 4, 5]
    suite = R.build_suite("tiny")
    assert len(report["runs"]) == R.suite_runs(suite)
    assert [p["test"] for c in report["claims"][:4] for p in c["parts"]] == [
        "superiority", "non-inferiority", "superiority", "equivalence", "superiority"]
    assert [p["test"] for p in report["claims"][4]["parts"]] == ["above", "superiority", "superiority"] * 2
    for claim in report["claims"]:
        assert claim["verdict"] in R.VERDICTS and claim["our_number"] and claim["setup"]
        recomputed = [RECOMPUTE[part["test"]](part) for part in claim["parts"]]
        assert R.settle(recomputed) == claim["verdict"]  # the stored verdicts follow the rule from the stored numbers
        assert [p["verdict"] for p in recomputed] == [p["verdict"] for p in claim["parts"]]
    claim4 = report["claims"][3]
    assert len(claim4["numbers"]["layers"]) == 2 and all(len(v) == 2 for v in claim4["numbers"]["sigma"].values())
    claim5 = report["claims"][4]
    assert len(claim5["figure"]["groups"]) == 3 and claim5["figure"]["hline"]["y"] == R.CNFA_THRESHOLD
    assert set(report["claims"][1]["figure"]["categories"]) == {"default", "gaussian-frozen", "default-frozen"}


def test_tiny_report_markdown_and_figures(tiny_report):
    text = (tiny_report / R.REPORT_MD).read_text()
    assert text.startswith("# Paper claims: tiny suite")
    assert "| # | Claim | Our number | Verdict |" in text and "## How verdicts are decided" in text
    for n in range(1, 6):
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

    def stop(event):
        asked.append(event)
        return "stop"

    assert R.reproduce("tiny", out=tmp_path / "r", device="cpu", callback=stop) is None
    assert not (tmp_path / "r" / R.REPORT_JSON).exists()
    assert asked[0].n_runs == R.suite_runs(R.build_suite("tiny")) and asked[0].run_index == 0


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
    assert [t.name for t in fig.data] == ["trained", "trained", "trained (mean)", "schedule"]
    assert list(fig.data[2].y) == pytest.approx([0.8, 0.7])
    with pytest.raises(ValueError, match="unknown figure kind"):
        claim_plots.claim_figure({"kind": "pie"})
