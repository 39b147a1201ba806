"""Check the papers' claims: for each one our number and a verdict from seeded runs, and run the quick suite here."""

import pandas as pd
import streamlit as st

from convcov_app import background, claims
from convcov_app.navigation import page_setup
from convcov_app.support import CHART, device_name, load_note, shown_errors
from convcov_core import reproduce, settings
from convcov_core.plots import claims as figures

page_setup("Paper Claims")

SLOT = "claims"


def quick_suite_job(callback):
    """The job: run the quick suite, report into $CONVCOV_HOME/reports; the folder, or None if cancelled."""
    return reproduce.reproduce("quick", callback=callback)


def start_quick_suite() -> None:
    with st.spinner("Preparing the datasets…"):
        suite = reproduce.build_suite("quick")
        images = reproduce.suite_images(suite)
    background.start(SLOT, "task", quick_suite_job, samples=images,
                     label=f"Paper claims: quick suite ({reproduce.suite_runs(suite)} runs)",
                     batch_size=suite.base.batch_size)


def run_area(reports: list) -> None:
    """The Run button, the running suite's progress, and how the last run ended."""
    suite = reproduce.build_suite("quick")
    images, cap = reproduce.suite_images(suite), settings.max_job_samples()
    busy = background.running(SLOT) is not None
    button_col, text_col = st.columns([1, 4], vertical_alignment="center")
    button_col.button("Run the quick suite", key="claims_run_quick", type="primary", on_click=start_quick_suite,
                      disabled=busy or images > cap)
    text_col.caption(claims.run_caption(reproduce.suite_runs(suite), images, cap, device_name(), reports)
                     + ("" if images > cap else load_note()))
    background.show_message(SLOT)
    mine = background.running(SLOT)
    if mine is None and background.others_running(SLOT):
        background.busy_notice(SLOT)
    if mine is not None:
        background.progress(SLOT, what="Quick suite")
        return
    done = background.finished(SLOT)
    if done is not None:
        status, folder = done
        if status.state == "done" and folder is not None:
            st.success(f"The quick suite finished; its report is in {folder} and shown below.")
        elif status.state == "cancelled":
            st.info("The quick suite was cancelled; no report was written.")
        else:
            st.error(f"The quick suite failed: {status.message}")


def show_claim(claim: dict) -> None:
    st.subheader(f"Claim {claim['id']}: {claim['title']}")
    st.markdown(f"> {claim['claim']}  \n> — {claim['source']}")
    left, right = st.columns([3, 2], gap="medium")
    left.plotly_chart(figures.claim_figure(claim["figure"]), **CHART, key=f"claims_figure_{claim['id']}")
    with right:
        regime = claim.get("regime")
        st.markdown(f"**Verdict:** {claims.verdict_text(claim['verdict'])}"
                    + (f" at this regime: {regime['measured']}" if regime else ""))
        if regime:
            st.caption(f"The paper's regime: {regime['paper']}")
        if claim.get("verdict_note"):
            st.warning(claim["verdict_note"])
        st.markdown(f"**Our number:** {claim['our_number']}")
        st.caption(f"Setup: {claim['setup']}")
    st.dataframe(pd.DataFrame([claims.part_row(p) for p in claim["parts"]]), hide_index=True,
                 key=f"claims_parts_{claim['id']}")


def show_report(folder, report: dict) -> None:
    st.markdown(f"**{report['suite'].capitalize()} suite.** {reproduce.provenance(report)}")
    rule = report["settings"].get("seed_rule")
    st.caption(report["description"] + (f" Seeds: {rule}." if rule else ""))
    st.markdown(claims.claims_table(report["claims"]))
    st.caption("A verdict holds at the regime it was measured in, not beyond: each claim below names the "
               "paper's regime beside ours.")
    with st.expander("How verdicts are decided"):
        st.markdown("\n".join(f"- **{name}**: {text}" for name, text in report["rules"].items()))
        st.caption(f"Margin m = {report['settings']['margin_points']:g} accuracy point(s).")
    table = report["comparison_table"]
    with st.expander("The comparison behind claims 1-4"):
        st.dataframe(pd.DataFrame(table["rows"], columns=table["columns"]), hide_index=True)
        st.markdown("\n".join(f"- {verdict}" for verdict in report["comparison_verdicts"]))
    for note in report.get("notes", []):
        st.warning(note)
    for claim in report["claims"]:
        show_claim(claim)
    markdown = folder / reproduce.REPORT_MD
    if markdown.is_file():
        st.download_button("Download the report (Markdown)", markdown.read_bytes(), file_name="report.md",
                           mime="text/markdown", key="claims_download_md")


st.title("Paper Claims")
st.markdown(
    "Six claims from the papers behind convcov, each tested by a small fixed experiment over several "
    "seeds: the Gaussian init against PyTorch's default, frozen filters, covariances transferred from a "
    "trained model, how learned covariances widen with depth, the Convolutional Neural Feature Ansatz, and "
    "where the Gaussian init helps most (filter size, depth, training length; reports from before "
    "2026-12-03 have the first five). "
    "Each verdict (supported, not supported or inconclusive) follows a rule stated with the report, "
    "from the paired differences over seeds, and holds at the regime it was measured in (model, filters "
    "against the feature map, steps, data), which each claim names beside the paper's; short runs often "
    "cannot tell, and then say so."
)
with shown_errors():
    found = reproduce.find_reports()
    run_area(found)
    done = background.finished(SLOT)
    if done is not None and st.session_state.get("claims_shown_job") != done[0].id:
        st.session_state.claims_shown_job = done[0].id
        st.session_state.pop("claims_report", None)  # show the new report
    if not found:
        st.info("No report yet. Run the quick suite above, or on your own machine: "
                "`python -m convcov_core reproduce --suite quick` (or `--suite full` on a GPU).")
    else:
        by_label = {claims.report_label(folder, report): (folder, report) for folder, report in found}
        with st.sidebar:
            label = st.selectbox("Report", list(by_label), key="claims_report",
                                 help="Newest first: the repository's reports/ and your own runs "
                                      "($CONVCOV_HOME/reports).")
        show_report(*by_label[label])
