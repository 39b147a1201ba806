"""The Sweeps page's sidebar: the grid (every list with more than one value is an axis) and where its
trials run, the local worker pool or a Ray cluster once connected."""

from __future__ import annotations

import streamlit as st

from convcov_core import settings, sweep

from . import labels, sweeps
from .store import sweep_store
from .support import present_datasets

LOCAL, RAY = "this machine (worker processes)", "a Ray cluster"


def init_widgets() -> None:
    defaults = sweeps.GridChoice(name=sweeps.next_name(s.name for s in sweep_store().list()))
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
    values["schedule"] = st.selectbox("σ schedule (closed-form schemes)", list(sweeps.SCHEDULE_BY_LABEL),
                                      key="sweep_schedule")
    if sweeps.SCHEDULE_BY_LABEL[values["schedule"]] == "custom":
        values["sigma_firsts"] = st.multiselect("σ first (layer 1, px)", labels.SIGMA_OPTIONS, key="sweep_sigma_first")
        values["sigma_lasts"] = st.multiselect("σ last (last layer, px)", labels.SIGMA_OPTIONS, key="sweep_sigma_last")
    schedule_note = st.empty()
    values["inits"] = st.multiselect("Init schemes (the first is the reference)", list(sweeps.scheme_by_label()),
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


@st.cache_resource(show_spinner="Connecting to Ray…")
def ray_executor(address, start_local: bool):
    """The Ray cluster as a probe found it, once per server process (a failure is not cached: Connect tries
    again); the server never connects to Ray itself."""
    return sweeps.connect_ray(address, start_local)


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
