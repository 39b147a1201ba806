"""Race init schemes: short comparisons over seeds with live curves, a results table and a verdict."""

import pandas as pd
import streamlit as st

from convcov_app import background, interrupted, lab, lab_history, lab_sidebar
from convcov_app.navigation import page_setup
from convcov_app.store import learned_covariances, store_problem, stored_comparison, stored_timings
from convcov_app.support import CHART, curve_charts, device_name, present_datasets, shown_errors
from convcov_core import jobs, learned_sets, reach, settings, text
from convcov_core.plots import curves as figures

page_setup("Training Lab")

SLOT = "lab"
#: Why the run store cannot be read, or None: said once at the top; the parts that read the store
#: (learned covariances of runs, the latest comparison, History) are left out instead of each saying it.
STORE_PROBLEM = store_problem()


@st.cache_data(ttl=60, max_entries=4, show_spinner=False)
def load_learned(source: tuple) -> list:
    kind, ref = source
    return learned_sets.load_covariance_set(ref) if kind == "set" else learned_covariances(ref)


@st.cache_data(max_entries=32, show_spinner=False)
def reach_warning(config) -> tuple[str | None, bool]:
    """(reach.kernel_reach_note, True), or (why the model does not take these images at all, False):
    Run says it too, and there is no arithmetic to count."""
    try:
        return reach.kernel_reach_note(config), True
    except ValueError as err:
        return str(err), False


@st.cache_data(max_entries=32, show_spinner=False)
def regime_lines(config) -> tuple[str | None, str | None]:
    """lab.regime_text, or (None, None) for a model that does not take these images (reach_warning says why)."""
    try:
        return lab.regime_text(config)
    except ValueError:
        return None, None


def start_comparison(plan: lab.ComparisonPlan) -> None:
    with st.spinner("Checking that the model fits the images…"):
        reach.check_model_fits(plan.config(next(iter(plan.variants))))
    background.start(SLOT, "compare", plan.base, variants=plan.variants, seeds=plan.seeds,
                     references=plan.references, ensemble=plan.ensemble, batch_size=plan.base.batch_size)
    st.rerun()


def show_results(status, result) -> None:
    """The finished job: verdict, table, figures, and where it was saved."""
    st.header("Results")
    if status.state == "failed":
        st.error(f"The comparison stopped with an error: {status.message}")
        return
    cmp = stored_comparison(status.result_id) if status.result_id else result
    if cmp is None or not any(cmp.runs.values()):
        st.info("Cancelled before any run finished: nothing to show or save.")
        return
    say = st.warning if cmp.status != "ok" else st.success if lab.verdict_is_clear(cmp) else st.info
    say(lab.verdict_text(cmp))
    st.caption(lab.setup_line(cmp))
    st.dataframe(pd.DataFrame(lab.results_rows(cmp)), hide_index=True)
    with st.expander("Raw eval-mode accuracy: BatchNorm statistics as training left them"):
        st.caption("The table above evaluates every network after recomputing its BatchNorm statistics on "
                   "training images. Here they are as training left them: how far each init lets them "
                   "settle in this budget.")
        raw = cmp.judged_on("test_acc_raw")
        st.dataframe(pd.DataFrame(lab.results_rows(raw)), hide_index=True)
        st.markdown(raw.verdict)
    for line in lab.problem_runs(cmp):
        st.warning(f"Run {line}. Its history up to that point is kept and shown below.")
    curves = lab.curves_from_runs([r for runs in cmp.runs.values() for r in runs])
    c1, c2, c3 = st.columns([1, 1, 0.8], gap="medium")
    c1.plotly_chart(figures.loss_figure(curves), **CHART)
    c2.plotly_chart(figures.accuracy_figure(curves), **CHART)
    c3.plotly_chart(figures.results_figure(cmp.rows, cmp.seeds, height=380), **CHART)
    if cmp.id is not None:
        st.caption(f"Saved to the run store as comparison #{cmp.id}; find it under History below.")


def setup_notes(setup: lab.LabSetup) -> None:
    """The preset the setup matches (or that it is custom) with its regime, and a preset's warnings."""
    if "lab_preset_warning" in st.session_state:
        st.warning(st.session_state.pop("lab_preset_warning"))
    preset = lab.matching_preset(setup, present_datasets())
    regime, wider = regime_lines(setup.training)
    if preset:
        st.info(" ".join(filter(None, (f"**{preset}.**", regime, lab.PRESETS[preset].expect))))
        if took := lab.preset_time_text(lab.PRESETS[preset]):
            st.caption(took)
        if st.session_state.get("lab_preset_note"):
            st.caption(st.session_state.lab_preset_note)
    else:
        st.caption(" ".join(filter(None, ("Custom settings (they match no preset).", regime,
                                          "Pick a preset in the sidebar to start over."))))
    if wider:
        st.warning(wider)


def controls(setup: lab.LabSetup, source) -> None:
    """What the setup will run, its size against the server's cap, Run and Estimate."""
    setup_notes(setup)
    if not setup.inits:
        st.info("Pick at least one init scheme in the sidebar.")
        return
    plan = lab.plan_comparison(setup, load_learned(source) if source else None)
    manager = background.job_manager()
    reach_note, fits = reach_warning(plan.base.replace(covariances=None))
    summary, over_caps = lab.work_notes(plan, manager.max_samples, manager.max_tflop,
                                                stored_timings()) if fits else (None, [])
    if summary:
        st.markdown(summary)
    for warning in filter(None, [reach_note, *over_caps]):
        st.warning(warning)
    busy = background.running(SLOT) is not None
    run_col, estimate_col, note_col = st.columns([1, 1, 3], vertical_alignment="center")
    run = run_col.button("Run comparison", type="primary", key="lab_run", disabled=busy)
    estimate = estimate_col.button("Estimate time", key="lab_estimate", disabled=busy,
                                   help="Times a few training steps and one evaluation on this device.")
    if estimate and (too_large := jobs.memory_problem(plan.base)):  # timing would train a few steps
        st.error(f"Not timed: {too_large}")
    elif estimate:
        with st.spinner("Timing a few steps…"):
            st.session_state.lab_estimate_for = (setup, lab.estimate_seconds(plan))
    if st.session_state.get("lab_estimate_for", (None,))[0] == setup:
        note_col.markdown(f"Estimated time on this device: **about "
                          f"{text.duration(st.session_state.lab_estimate_for[1])}** (more if the server is busy).")
    elif not busy:
        note_col.caption("Progress, live curves and then the results table and verdict appear below.")
    if run:
        start_comparison(plan)


def job_area() -> None:
    """Messages, the running job's progress and live curves, or the last result."""
    background.show_message(SLOT)
    mine = background.running(SLOT)
    if mine is None and STORE_PROBLEM is None:
        interrupted.show(SLOT)
    if mine is None and background.others_running(SLOT):
        background.busy_notice(SLOT)
    if mine is not None:
        background.progress(SLOT, live=lambda events: curve_charts(lab.curves_from_events(events)), what="Training")
        return
    done = background.finished(SLOT)
    if done is not None:
        show_results(*done)
    elif STORE_PROBLEM is None:
        lab_history.latest_comparison()


st.title("Training Lab")
st.markdown(
    "Train the same network from different initializations of its depthwise filters and compare "
    "the test accuracy over several seeds, paired seed by seed. Training runs in the background "
    "while its curves update here, and every finished comparison is saved under History. "
    f"Device: **{device_name()}**."
)
if STORE_PROBLEM is not None:
    st.error(STORE_PROBLEM)
with shown_errors():
    lab_sidebar.init_widgets(STORE_PROBLEM is None)
    with st.sidebar:
        setup, source = lab_sidebar.sidebar(present_datasets(), min(31, settings.max_kernel_size()),
                                            STORE_PROBLEM is None)
    lab_sidebar.keep(setup)
    controls(setup, source)
with shown_errors():
    job_area()
if STORE_PROBLEM is None:
    with shown_errors():
        lab_history.history()
