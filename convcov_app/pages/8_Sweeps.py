"""Sweep a grid (data, kernel and patch size, width, depth, epochs, filters, σ) over seeds; map where a scheme helps."""

import streamlit as st

from convcov_app import background, sweep_results, sweep_sidebar, sweeps
from convcov_app.navigation import page_setup
from convcov_app.store import stored_timings, sweep_store
from convcov_app.support import CHART, choose, shown_errors
from convcov_core import settings, sweep
from convcov_core.plots import sweep as figures

page_setup("Sweeps")

SLOT = "sweeps"
TITLES = sweeps.AXIS_TITLES


def start(grid: sweep.Sweep, executor, n_todo: int, next_name: str | None = None) -> None:
    background.start(SLOT, "task", sweeps.sweep_job(grid, sweep_store(), executor),
                     label=sweeps.job_label(grid, n_todo, executor))
    if background.running(SLOT) is not None:
        sweep_store().register(grid, grid.trials())
        st.session_state.sweep_open = grid.name
        if next_name:
            st.session_state.sweep_name = next_name


def new_sweep(choice: sweeps.GridChoice, executor) -> None:
    """The grid's size, its estimate, where it runs, Run."""
    st.header("New sweep")
    try:
        grid = sweeps.build_sweep(choice)
    except ValueError as err:
        st.error(str(err))
        return
    store = sweep_store()
    finished = store.finished(t.key for t in grid.trials())
    n_stored = len(finished)
    st.markdown(f"**{sweeps.size_text(grid, n_stored)}.** {sweeps.setup_text(grid)}")
    manager = background.job_manager()
    caption, over_caps = sweeps.work_notes(grid, [t for t in grid.trials() if t.key not in finished],
                                           manager.max_samples, manager.max_tflop, stored_timings(),
                                           executor.slots if executor else 1)
    st.caption(caption)
    for warning in over_caps:
        st.warning(warning)
    if note := sweeps.map_note(grid):
        st.markdown(note)
    conflict = sweeps.name_conflict(store, grid)
    if conflict:
        st.warning(conflict)
    if executor is None:
        st.info(sweeps.no_executor_text(settings.ray_address(), settings.ray_local()))
        return
    st.caption(f"Runs on the {executor.describe()}.")
    busy = background.running(SLOT) is not None
    run_col, estimate_col, note_col = st.columns([1, 1, 3], vertical_alignment="center")
    taken = [s.name for s in store.list()] + [grid.name]
    run_col.button("Run sweep", type="primary", key="sweep_run", disabled=busy or bool(conflict) or bool(over_caps),
                   on_click=start, args=(grid, executor, grid.n_trials - n_stored, sweeps.next_name(taken)))
    if estimate_col.button("Estimate time", key="sweep_estimate", disabled=busy,
                           help="Times a few training steps of two trials on this machine."):
        with st.spinner("Timing a few steps…"):
            st.session_state.sweep_estimate_for = (grid.to_dict(), executor.describe(),
                                                   sweeps.estimate_text(grid, executor, grid.n_trials - n_stored))
    estimate = st.session_state.get("sweep_estimate_for")
    if estimate and estimate[:2] == (grid.to_dict(), executor.describe()):
        note_col.markdown(f"Estimated time: **{estimate[2]}** (more if the server is busy).")
    elif not busy:
        note_col.caption("Estimate time measures a few steps here; the cells fill in below as trials finish.")


def live_cells(name: str):
    """The running sweep's cells, read from the run store at every refresh."""
    def draw(_events) -> None:
        grid = sweep_store().get(name)
        counts = sweeps.cell_counts(grid, sweep.trial_table(grid, sweep_store()))
        st.plotly_chart(figures.progress_grid(counts, list(grid.axes), titles=TITLES), **CHART,
                        key="sweep_live_cells")
    return draw


def job_area() -> str | None:
    """The running sweep (found again after a reload), the last outcome; the running sweep's name."""
    found = sweeps.running_sweep(background.job_manager().list_jobs())
    if found and background.running(SLOT) != found[0]:
        background.follow(SLOT, found[0])
    background.show_message(SLOT)
    if background.running(SLOT) is None and background.others_running(SLOT):
        background.busy_notice(SLOT)
    if background.running(SLOT) is not None:
        if found:
            st.subheader(f"Running: {found[1]}")
        background.progress(SLOT, live=live_cells(found[1]) if found else None, what="Sweep",
                            describe=sweeps.progress_line)
    done = background.finished(SLOT)
    if done is not None and background.running(SLOT) is None:
        status, outcome = done
        if status.state == "done" and outcome is not None:
            st.success(sweeps.outcome_text(outcome))
        elif status.state == "cancelled":
            st.info("Sweep stopped. Its finished trials are kept in the run store; Resume runs the rest.")
        elif status.state == "interrupted":
            st.warning(sweeps.interrupted_text(status))
        else:
            st.error(f"The sweep stopped with an error: {status.message}")
    return found[1] if found else None


def stored_sweeps(running_name: str | None, executor) -> None:
    st.header("Sweeps in the run store")
    store = sweep_store()
    summaries = {s.name: s for s in store.list()}
    if not summaries:
        st.caption("Sweeps run here (or with `convcov sweep run` on the same run store) are kept and listed here.")
        return
    name = choose(st, "Open a sweep", list(summaries), running_name or next(iter(summaries)), "sweep_open")
    summary, grid = summaries[name], store.get(name)
    st.caption(f"{sweeps.sweep_label(summary, running=name == running_name)}. {sweeps.setup_text(grid)}")
    if name == running_name:
        st.caption("Running: its cells fill in above; the effects appear here when it ends.")
        return
    table = sweep.trial_table(grid, store)
    n_left = int((table["status"] == "pending").sum())
    if n_left:
        st.plotly_chart(figures.progress_grid(sweeps.cell_counts(grid, table), list(grid.axes), titles=TITLES),
                        **CHART, key="sweep_stopped_cells")
        st.button(f"Resume: run the {n_left} trial(s) left", key="sweep_resume", on_click=start,
                  args=(grid, executor, n_left), disabled=executor is None or running_name is not None)
    if n_left < len(table):
        sweep_results.results(grid, table)


st.title("Sweeps")
st.markdown(
    "Does the covariance init help, and where? A sweep trains every combination of the settings you pick (data, "
    "kernel and patch sizes, widths × depths, epochs, trained or frozen filters, σ) with every init scheme and "
    "several seeds, then shows for each cell the difference in test accuracy between a scheme and the reference, "
    "paired by seed, with its 95% interval. Trials run in the background, on worker processes here or on a Ray "
    "cluster; every finished trial is kept in the run store, so you can leave, come back, cancel and resume.")
with shown_errors():
    sweep_sidebar.init_widgets()
    with st.sidebar:
        choice = sweep_sidebar.grid_widgets()
        executor = sweep_sidebar.executor_widgets()
    new_sweep(choice, executor)
    running_name = job_area()
    stored_sweeps(running_name, executor)
