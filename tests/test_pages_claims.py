"""Paper Claims page (AppTest): a report's claims with number, verdict and figure; switching
reports; no report yet; the quick suite started from the page (the tiny suite stands in for it)
through the server's job manager until its report shows."""

import dataclasses
import json
import time

import pytest

from convcov_app import lab
from convcov_core import compare, covariance, reproduce, settings, train
from convcov_core.cli import format_comparison
from convcov_core.plots import claims as claim_plots
from helpers.pages import assert_clean, check_widget_extremes, run_page

PAGE = "convcov_app/pages/7_Paper_Claims.py"
JOB_DEADLINE_S = 300  # a stuck job fails the test instead of hanging it


def fake_suite_runs(name: str, accuracies: dict) -> reproduce.SuiteRuns:
    """What run_suite returns, with made-up accuracies and covariances instead of training."""
    suite = dataclasses.replace(reproduce.build_suite("tiny", device="cpu"), name=name)
    layers = ["blocks.0.0.fn.0", "blocks.1.0.fn.0"]

    def run(variant, seed, acc):
        return train.RunResult(config=suite.base.replace(seed=seed), history={},
                               final={"test_acc": acc, "train_acc": acc, "loss": 0.5}, status="ok", message="",
                               wall_time=1.0, device="cpu", layer_names=layers,
                               covariances=[covariance.gaussian(5, s + 0.1 * seed) for s in (0.8, 1.6)],
                               variant=variant)

    def acc(variant, seed):
        value = accuracies[variant]
        return value[seed] if isinstance(value, list) else value + seed

    runs = {v: [run(v, s, acc(v, s)) for s in suite.seeds] for v in suite.variants}
    references = {v: None if v == "default" else "default" for v in suite.variants}
    rows, verdicts = compare.summarize(suite.variants, suite.seeds, runs, references)
    comparison = compare.ComparisonResult(suite.base, suite.variants, suite.seeds, runs, rows, verdicts, 10.0,
                                        references=references)
    cnfa = {s: {"label": "cnn-4,4", "test_acc": 90.0,
                "layers": [{"layer": "block1.0", "kind": "regular", "r_trained": 0.95 + 0.01 * s, "r_init": 0.4,
                            "r_control": 0.3},
                           {"layer": "block2.0", "kind": "regular", "r_trained": 0.92 + 0.01 * s, "r_init": 0.5,
                            "r_control": 0.2}]}
            for s in suite.seeds}
    sources = {s: run("default", s, 60.0) for s in suite.seeds}
    return reproduce.SuiteRuns(suite, comparison, sources, cnfa, 12.0, 20.0, time.time(), [0.5, 0.5, 0.5],
                               [0.6, 0.5, 0.5])


def write_fake_report(name: str, accuracies: dict, folder) -> None:
    """report.json and report.md of made-up runs (no PNGs: the page draws its own figures)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(claim_plots, "can_draw_png", lambda: False)
        reproduce.write_report(reproduce.make_report(fake_suite_runs(name, accuracies)), folder)


@pytest.fixture(scope="module")
def report_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    write_fake_report("quick", {"default": 70.0, "gaussian": 72.0, "default-frozen": 40.0,
                                "gaussian-frozen": 69.5, "learned": 71.0}, root / "quick")
    return root


@pytest.fixture
def no_reports(tmp_path, monkeypatch):
    """A fresh $CONVCOV_HOME and no repository reports."""
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("convcov_core.reproduce.files.REPO_REPORTS", tmp_path / "no_reports")


def test_page_shows_each_claim_with_number_verdict_and_figure(report_root, no_reports, monkeypatch):
    monkeypatch.setattr("convcov_core.reproduce.files.REPO_REPORTS", report_root)
    at = run_page(PAGE)
    assert [h.value for h in at.subheader] == [f"Claim {c['id']}: {c['title']}"
                                               for c in reproduce.load_report(report_root / "quick")["claims"]]
    assert len(at.get("plotly_chart")) == 5
    text = " ".join(m.value for m in at.markdown)
    assert text.count("**Verdict:**") == 5 and text.count("**Our number:**") == 5
    assert "gaussian - default = +2.00" in text  # made-up accuracies: gaussian is 2 points above default
    assert "Produced" in text and "wall time" in text and "CPU" in text
    assert at.selectbox(key="claims_report").value.startswith("quick suite")
    assert len(at.get("download_button")) == 1 and not at.info


def test_page_switches_between_reports(report_root, no_reports, monkeypatch, tmp_path):
    monkeypatch.setattr("convcov_core.reproduce.files.REPO_REPORTS", report_root)
    home_reports = tmp_path / "home" / "reports"
    write_fake_report("full", {"default": 80.0, "gaussian": 79.0, "default-frozen": 50.0,
                               "gaussian-frozen": 60.0, "learned": 80.0}, home_reports / "full-1")
    assert check_widget_extremes(PAGE, skip=("claims_run_quick",)) >= 2


def test_page_without_report_says_how_to_make_one(no_reports, monkeypatch):
    monkeypatch.setenv("CONVCOV_MAX_JOB_SAMPLES", "10000000")
    at = run_page(PAGE)
    assert "No report yet" in at.info[0].value
    assert not at.get("plotly_chart")
    assert not at.button(key="claims_run_quick").disabled


def test_a_quick_suite_larger_than_the_servers_job_cap_says_how_to_run_it(no_reports):
    at = run_page(PAGE)
    images = reproduce.suite_images(reproduce.build_suite("quick"))
    assert images > settings.max_job_samples()
    assert at.button(key="claims_run_quick").disabled
    assert any(f"{images:,} images" in c.value and "convcov reproduce --suite quick" in c.value
               for c in at.caption)


def test_quick_suite_runs_from_the_page_and_its_report_appears(no_reports, monkeypatch):
    monkeypatch.setitem(reproduce.SUITES, "quick", reproduce.tiny_suite)
    at = run_page(PAGE)
    at.button(key="claims_run_quick").click().run()
    assert_clean(at)
    deadline = time.monotonic() + JOB_DEADLINE_S
    while not at.get("plotly_chart") and time.monotonic() < deadline:
        time.sleep(2)
        at.run()
        assert_clean(at)
    assert len(at.get("plotly_chart")) == 6
    assert any("The quick suite finished" in s.value for s in at.success)
    assert reproduce.find_reports()[0][1]["suite"] == "tiny"


def test_the_lab_the_cli_and_the_report_give_one_verdict_for_one_comparison():
    """The same comparison through the Training Lab's presenter, the CLI's table and the claims
    report: the same table cells and the same verdict sentences."""
    runs = fake_suite_runs("quick", {"default": [70.0, 71.0], "gaussian": [72.0, 71.5],
                                     "default-frozen": [40.0, 45.0], "gaussian-frozen": [60.0, 60.5],
                                     "learned": [70.4, 71.3]})
    cmp = runs.comparison
    records = lab.results_rows(cmp)
    verdicts = {r["variant"]: r["verdict"] for r in records}
    assert verdicts == {"default": "reference", "gaussian": "no clear winner", "default-frozen": "default better",
                        "gaussian-frozen": "default better", "learned": "no clear winner"}
    text = format_comparison(cmp)
    report = reproduce.make_report(runs)
    markdown = reproduce.markdown_report(report, {})
    for record in records:
        cells = list(record.values())
        assert "| " + " | ".join(cells) + " |" in markdown  # the report's row is the Lab's row
        line = next(line for line in text.splitlines() if line.startswith(record["variant"] + " "))
        assert record["verdict"] in line and record["Δ vs reference, points [95% interval]"] in line
    assert report["comparison_verdicts"] == cmp.verdicts
    for sentence in cmp.verdicts:
        assert sentence in text and sentence in markdown and sentence in lab.verdict_text(cmp)
    claim2 = report["claims"][1]  # gaussian-frozen vs trained default: 10 points worse, margin 1
    assert claim2["verdict"] == reproduce.NOT_SUPPORTED


def test_every_verdict_names_the_regime_it_was_measured_in(report_root, no_reports, monkeypatch):
    monkeypatch.setattr("convcov_core.reproduce.files.REPO_REPORTS", report_root)
    at = run_page(PAGE)
    assert_clean(at)
    report = reproduce.load_report(report_root / "quick")
    measured = report["claims"][0]["regime"]["measured"]
    assert "5 x 5 filters on 6 x 6 maps" in measured  # the tiny suite's ConvMixer-8/2 on 12 x 12 noisy bars
    text = " ".join(m.value for m in at.markdown)
    assert "| Regime measured |" in text and text.count(measured) >= 4
    assert text.count("at this regime:") == 5
    papers = [c.value for c in at.caption if c.value.startswith("The paper's regime:")]
    assert len(papers) == 5 and all("CIFAR-10" in p for p in papers[:4])


def test_intervals_below_zero_without_a_refutation_are_said_beside_the_verdict(no_reports, monkeypatch, tmp_path):
    """Three parts each wholly below 0 on its own, none refuted after Holm: the page says why."""
    folder = tmp_path / "reports" / "quick"
    write_fake_report("quick", {"default": 70.0, "gaussian": 72.0, "default-frozen": 40.0,
                                "gaussian-frozen": 69.5, "learned": 71.0}, folder)
    report = reproduce.load_report(folder)
    parts = [reproduce.superiority(dict(enumerate([-1.0, -1.6, -0.4, -1.2, -0.1])), "a", "b", f"part {i}")
             for i in range(3)]
    report["claims"][0].update(parts=parts, verdict=reproduce.settle(parts),
                               verdict_note=reproduce.unrefuted_below(parts))
    (folder / reproduce.REPORT_JSON).write_text(json.dumps(report))
    monkeypatch.setattr("convcov_core.reproduce.files.REPO_REPORTS", tmp_path / "reports")
    at = run_page(PAGE)
    assert_clean(at)
    assert report["claims"][0]["verdict"] == reproduce.INCONCLUSIVE
    assert any("Holm" in w.value and "3 of 3 tests" in w.value for w in at.warning)
    assert "inconclusive**] (see the note below)" in " ".join(m.value for m in at.markdown)


def test_a_report_written_before_regimes_still_opens(no_reports, monkeypatch, tmp_path):
    folder = tmp_path / "reports" / "quick"
    write_fake_report("quick", {"default": 70.0, "gaussian": 72.0, "default-frozen": 40.0,
                                "gaussian-frozen": 69.5, "learned": 71.0}, folder)
    report = reproduce.load_report(folder)
    for claim in report["claims"]:
        claim.pop("regime"), claim.pop("verdict_note")
        for part in claim["parts"]:
            part.pop("p_support")
    (folder / reproduce.REPORT_JSON).write_text(json.dumps(report))
    monkeypatch.setattr("convcov_core.reproduce.files.REPO_REPORTS", tmp_path / "reports")
    at = run_page(PAGE)
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 5
    assert "not recorded (report from before regimes)" in " ".join(m.value for m in at.markdown)
