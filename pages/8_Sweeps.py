"""Sweep a grid (data, kernel and patch size, width, depth, epochs, filters, σ) over seeds; map where a scheme helps."""

import streamlit as st

from convcov_app import background, labels, sweeps
from convcov_app.lab import curves_from_runs
from convcov_app.navigation import page_setup
from convcov_app.store import run_store
from convcov_app.support import CHART, present_datasets, shown_errors
from convcov_core import settings, sweep
from convcov_core.plots import sweep as figures
from convcov_core.plots import training as training_figures

page_setup("Sweeps")

SLOT = "sweeps"
TITLES = sweeps.AXIS_TITLES
LOCAL, RAY = "this machine (worker processes)", "a Ray cluster"
NONE = "none"


@st.cache_resource(show_spinner=False)
def sweep_store(path: str) -> sweep.SweepStore:
    return sweep.SweepStore(path)


def store() -> sweep.SweepStore:
    return sweep_store(str(run_store().path))


@st.cache_resource(show_spinner="Connecting to Ray…")
def ray_executor(address, start_local: bool):
    """The Ray cluster as a probe found it, once per server process (a failure is not cached: Connect tries
    again); the server never connects to Ray itself."""
    return sweeps.connect_ray(address, start_local)


@st.cache_data(max_entries=64, show_spinner=False)
def stored_run(store_path: str, run_id: int):
    return run_store().get(run_id)


def choose(where, label: str, options: list, default, key: str, **kwargs):
    """A selectbox whose kept value is reset to `default` when it is no longer an option."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default if default in options else options[0]
    return where.selectbox(label, options, key=key, **kwargs)


# ---------------------------------------------------------------------------------------------
# The grid and where it runs (sidebar)
# ---------------------------------------------------------------------------------------------


def init_widgets() -> None:
    defaults = sweeps.GridChoice(name=sweeps.next_name(s.name for s in store().list()))
    state = {**sweeps.widget_values(defaults), "sweep_executor": LOCAL, "sweep_workers": sweep.LocalPool().workers}
    for key, value in state.items():
        st.session_state.setdefault(key, value)


def grid_widgets() -> sweeps.GridChoice:
    """The grid: every list with more than one value is an axis."""
    st.header("Grid")
    st.caption("Pick several values to make an axis; one value is kept fixed.")
    name = st.text_input("Sweep name", key="sweep_name", help="Letters, digits, '.', '-' or '_'. A stopped "
                         "sweep resumes under its name.")
    values = {field: st.multiselect(label, options, key=key, help=help)
              for field, key, label, options, help in sweeps.grid_lists(list(present_datasets()),
                                                                        settings.max_kernel_size())}
    values["schedule"] = st.selectbox("σ schedule (Gaussian schemes)", list(sweeps.SCHEDULE_BY_LABEL),
                                      key="sweep_schedule")
    if sweeps.SCHEDULE_BY_LABEL[values["schedule"]] == "custom":
        values["sigma_firsts"] = st.multiselect("σ first (layer 1, px)", labels.SIGMA_OPTIONS, key="sweep_sigma_first")
        values["sigma_lasts"] = st.multiselect("σ last (last layer, px)", labels.SIGMA_OPTIONS, key="sweep_sigma_last")
    schedule_note = st.empty()
    values["inits"] = st.multiselect("Init schemes (the first is the reference)", list(sweeps.SCHEME_BY_LABEL),
                                     key="sweep_inits")
    values["n_seeds"] = st.number_input("Seeds per cell and scheme", 1, 100, step=1, key="sweep_seeds",
                                        help="Seeds 0, 1, ...: each scheme runs once per seed, paired by seed.")
    with st.expander("Quick runs and sizes"):
        values["max_steps"] = st.number_input("Stop each trial after this many steps (0: whole epochs)", 0,
                                              100_000, step=1, key="sweep_max_steps")
        values["batch_size"] = st.select_slider("Batch size", sweeps.BATCH_SIZES, key="sweep_batch")
    choice = sweeps.choice_from(name, values)
    schedule_note.caption(sweeps.schedule_caption(choice))
    return choice


def want_ray() -> None:
    st.session_state.sweep_ray_wanted = True


def executor_widgets():
    """Where trials run: the local pool, or the configured Ray cluster once connected (None before)."""
    st.header("Run on")
    where = st.radio("Executor", [LOCAL, RAY], key="sweep_executor", label_visibility="collapsed")
    if where == LOCAL:
        workers = st.number_input("Worker processes", 1, 64, step=1, key="sweep_workers",
                                  help="Trials that run at once; the CPU cores are shared among them.")
        return sweep.make_executor("local", workers=int(workers))
    address, start_local = settings.ray_address(), settings.ray_local()
    st.caption(sweeps.ray_caption(address, start_local))
    if st.session_state.get("sweep_ray_wanted"):
        st.session_state.sweep_ray_wanted = False
        try:
            executor = ray_executor(address, start_local)
            st.session_state.sweep_ray_wanted = True
            st.caption("Connected: the sweep's trials run on this Ray (see *New sweep*).")
            return executor
        except sweeps.RayNotConfigured as note:
            st.session_state.sweep_ray_note = str(note)
        except ValueError as err:
            st.session_state.sweep_ray_error = str(err)
    st.button("Connect", key="sweep_connect", on_click=want_ray)
    if "sweep_ray_note" in st.session_state:
        st.info(st.session_state.pop("sweep_ray_note"))
    if "sweep_ray_error" in st.session_state:
        st.error(st.session_state.pop("sweep_ray_error"))
    return None


# ---------------------------------------------------------------------------------------------
# Starting, following and resuming
# ---------------------------------------------------------------------------------------------


def start(grid: sweep.Sweep, executor, n_todo: int, next_name: str | None = None) -> None:
    background.start(SLOT, "task", sweeps.sweep_job(grid, store(), executor),
                     label=sweeps.job_label(grid, n_todo, executor))
    if background.running(SLOT) is not None:
        store().register(grid, grid.trials())
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
    n_stored = len(store().finished(t.key for t in grid.trials()))
    st.markdown(f"**{sweeps.size_text(grid, n_stored)}.** {sweeps.setup_text(grid)}")
    if note := sweeps.map_note(grid):
        st.markdown(note)
    conflict = sweeps.name_conflict(store(), grid)
    if conflict:
        st.warning(conflict)
    if executor is None:
        st.info(sweeps.no_executor_text(settings.ray_address(), settings.ray_local()))
        return
    st.caption(f"Runs on the {executor.describe()}.")
    busy = background.running(SLOT) is not None
    run_col, estimate_col, note_col = st.columns([1, 1, 3], vertical_alignment="center")
    taken = [s.name for s in store().list()] + [grid.name]
    run_col.button("Run sweep", type="primary", key="sweep_run", disabled=busy or bool(conflict),
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
        grid = store().get(name)
        counts = sweeps.cell_counts(grid, sweep.trial_table(grid, store()))
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


# ---------------------------------------------------------------------------------------------
# A stored sweep: its cells, effects and runs
# ---------------------------------------------------------------------------------------------


def fixed_values(columns, grid: sweep.Sweep, effects, used, prefix: str) -> dict:
    """A selectbox per axis the figure does not draw: its value for the figure."""
    fixed = {}
    for n, axis in enumerate(sweeps.fixed_axes(grid, used)):
        values = list(dict.fromkeys(effects[axis]))
        fixed[axis] = choose(columns[n % len(columns)], TITLES.get(axis, axis), values, values[0],
                             key=f"{prefix}_{axis}")
    return fixed


def axis_choice(where, label: str, axes: list, default, key: str, optional: bool = False):
    """A selectbox of axis titles; the axis chosen (None for 'none')."""
    by_title = {TITLES.get(a, a): a for a in axes}
    options = ([NONE] if optional else []) + list(by_title)
    picked = choose(where, label, options, TITLES.get(default, default) if default else NONE, key)
    return by_title.get(picked)


def heatmap(grid: sweep.Sweep, effects, scheme: str) -> None:
    st.subheader("Effect per cell")
    st.caption(f"Colour and numbers: {scheme} − {grid.reference} in test accuracy points, the mean over seeds "
               "paired by seed with its 95% interval below it (the colour shows the mean alone: read it with "
               "the interval); ★ marks a cell whose interval excludes 0 (hover names the winner). Blank: no "
               "paired seeds yet." + sweeps.map_caption(effects))
    axes, defaults = list(grid.axes), sweeps.figure_axes(grid)
    columns = st.columns(4)
    x = axis_choice(columns[0], "Columns", axes, defaults["x"], "sweep_heat_x")
    y = axis_choice(columns[1], "Rows", [a for a in axes if a != x], defaults["y"], "sweep_heat_y", optional=True)
    fixed = fixed_values(columns[2:], grid, effects, (x, y), "sweep_heat_fix")
    st.plotly_chart(figures.effect_heatmap(sweeps.slice_rows(effects, scheme, fixed), x, y, titles=TITLES),
                    **CHART, key="sweep_heatmap")


def lines(grid: sweep.Sweep, effects, scheme: str) -> None:
    st.subheader("Effect against one axis")
    axes, defaults = list(grid.axes), sweeps.figure_axes(grid)
    columns = st.columns(4)
    x = axis_choice(columns[0], "Against", axes, defaults["against"], "sweep_line_x")
    line = axis_choice(columns[1], "One line per", [a for a in axes if a != x], defaults["lines"],
                       "sweep_line_lines", optional=True)
    panel = axis_choice(columns[2], "Panels per", [a for a in axes if a not in (x, line)], defaults["panels"],
                        "sweep_line_panels", optional=True)
    fixed = fixed_values(columns[3:], grid, effects, (x, line, panel), "sweep_line_fix")
    st.plotly_chart(figures.effect_lines(sweeps.slice_rows(effects, scheme, fixed), x, line, panel, titles=TITLES),
                    **CHART, key="sweep_lines")


def cell_runs(grid: sweep.Sweep, table, effects) -> None:
    """One cell's trials: its effect with the power note, test accuracy per seed and scheme, and
    their training curves."""
    st.subheader("One cell's runs")
    cells = {sweeps.cell_text(grid, cell): cell for cell in grid.cells()}
    cell = cells[choose(st, "Cell", list(cells), next(iter(cells)), "sweep_cell")]
    for note in sweeps.cell_notes(effects, grid, cell):
        st.markdown(note)
    seeds = sweeps.seed_table(grid, table, cell)
    st.dataframe(seeds, hide_index=True, key="sweep_seed_table",
                 column_config={c: st.column_config.NumberColumn(format="%.2f") for c in seeds.columns[1:]})
    runs = [stored_run(str(run_store().path), run_id) for run_id in sweeps.cell_run_ids(grid, table, cell)]
    curves = curves_from_runs(runs)
    left, right = st.columns(2, gap="medium")
    left.plotly_chart(training_figures.loss_figure(curves), **CHART, key="sweep_cell_loss")
    right.plotly_chart(training_figures.accuracy_figure(curves), **CHART, key="sweep_cell_accuracy")


def results(grid: sweep.Sweep, table) -> None:
    effects = sweep.cell_effects(grid, table)
    shown = sweeps.readable(effects, grid)
    schemes = grid.inits[1:]
    scheme = choose(st, f"Scheme (against {grid.reference})", schemes, schemes[0], "sweep_scheme") \
        if len(schemes) > 1 else schemes[0]
    if grid.axes:
        heatmap(grid, shown, scheme)
        lines(grid, shown, scheme)
    st.subheader("Every cell")
    st.dataframe(sweeps.effect_rows(effects, grid), hide_index=True, key="sweep_effects")
    st.caption(sweeps.table_caption(effects))
    left, right, _ = st.columns([1, 1, 4])
    left.download_button("Effects (CSV)", effects.to_csv(index=False), file_name=f"{grid.name}.effects.csv",
                         mime="text/csv", key="sweep_effects_csv")
    right.download_button("Trials (CSV)", table.to_csv(index=False), file_name=f"{grid.name}.csv",
                          mime="text/csv", key="sweep_trials_csv")
    cell_runs(grid, table, effects)


def stored_sweeps(running_name: str | None, executor) -> None:
    st.header("Sweeps in the run store")
    summaries = {s.name: s for s in store().list()}
    if not summaries:
        st.caption("Sweeps run here (or with `convcov sweep run` on the same run store) are kept and listed here.")
        return
    name = choose(st, "Open a sweep", list(summaries), running_name or next(iter(summaries)), "sweep_open")
    summary, grid = summaries[name], store().get(name)
    st.caption(f"{sweeps.sweep_label(summary, running=name == running_name)}. {sweeps.setup_text(grid)}")
    if name == running_name:
        st.caption("Running: its cells fill in above; the effects appear here when it ends.")
        return
    table = sweep.trial_table(grid, store())
    n_left = int((table["status"] == "pending").sum())
    if n_left:
        st.plotly_chart(figures.progress_grid(sweeps.cell_counts(grid, table), list(grid.axes), titles=TITLES),
                        **CHART, key="sweep_stopped_cells")
        st.button(f"Resume: run the {n_left} trial(s) left", key="sweep_resume", on_click=start,
                  args=(grid, executor, n_left), disabled=executor is None or running_name is not None)
    if n_left < len(table):
        results(grid, table)


st.title("Sweeps")
st.markdown(
    "Does the covariance init help, and where? A sweep trains every combination of the settings you pick (data, "
    "kernel and patch sizes, widths × depths, epochs, trained or frozen filters, σ) with every init scheme and "
    "several seeds, then shows for each cell the difference in test accuracy between a scheme and the reference, "
    "paired by seed, with its 95% interval. Trials run in the background, on worker processes here or on a Ray "
    "cluster; every finished trial is kept in the run store, so you can leave, come back, cancel and resume.")
with shown_errors():
    init_widgets()
    with st.sidebar:
        choice = grid_widgets()
        executor = executor_widgets()
    new_sweep(choice, executor)
    running_name = job_area()
    stored_sweeps(running_name, executor)
