"""The Training Lab's saved comparisons: the latest one on this server (before a visitor has a result of
their own, else the bundled example's training curves) and History (overlay, export, delete)."""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from convcov_core import examples

from . import lab
from .store import run_store, stored_comparison, stored_run
from .support import curve_charts


def latest_comparison() -> None:
    """Before this visitor has a result: the last comparison saved on this server, else the bundled
    example network's own training curves (what a run draws)."""
    store = run_store()
    saved = store.list_comparisons()  # newest first
    if saved:
        cmp = stored_comparison(saved[0].id)
        st.header("Latest comparison on this server")
        st.markdown(f"**Comparison #{cmp.id}:** {lab.verdict_text(cmp)}")
        st.caption(lab.setup_line(cmp) + ". Run your own with the settings in the sidebar; "
                   "older ones are under History.")
        curves = lab.curves_from_runs([r for runs in cmp.runs.values() for r in runs])
    elif (example := examples.stored_id(store)) is not None:
        st.header("What a run draws")
        st.caption("The training curves of the bundled example network (one run). A comparison draws "
                   "one line per variant and seed while it trains, then a results table and a verdict.")
        curves = lab.curves_from_runs([stored_run(str(store.path), example)])
    else:
        return
    curve_charts(curves, key="lab_latest")


def delete_selected(chosen: list) -> None:
    store = run_store()
    for kind, ref in chosen:
        try:
            (store.delete_comparison if kind == "c" else store.delete)(ref)
        except ValueError:  # already deleted (another tab)
            pass
    st.session_state.lab_history = []
    st.session_state.lab_confirm_delete = False


def history() -> None:
    st.header("History")
    store = run_store()
    options = lab.history_options(store.list_comparisons(), store.list())
    if not options:
        st.caption("Finished comparisons are saved here automatically.")
        return
    st.session_state.lab_history = [v for v in st.session_state.get("lab_history", []) if v in options]
    picked = st.multiselect("Saved comparisons and runs to overlay", list(options), key="lab_history")
    if not picked:
        st.caption(f"{len(options)} saved. Pick some to overlay their curves, export or delete them.")
        return
    chosen = [options[label] for label in picked]
    comparisons = [stored_comparison(ref) for kind, ref in chosen if kind == "c"]
    runs = [stored_run(str(store.path), ref) for kind, ref in chosen if kind == "r"]
    curves = [c for cmp in comparisons for c in
              lab.curves_from_runs([r for rs in cmp.runs.values() for r in rs], prefix=f"#{cmp.id} ")]
    curves += lab.curves_from_runs(runs, prefix="run ")
    curve_charts(curves)
    for cmp in comparisons:
        st.markdown(f"**Comparison #{cmp.id}:** {lab.verdict_text(cmp)}")
        st.caption(lab.setup_line(cmp))
        st.dataframe(pd.DataFrame(lab.results_rows(cmp)), hide_index=True)
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("Export JSON", partial(lab.history_json, comparisons, runs),
                       file_name="convcov_history.json", mime="application/json", key="lab_export_json")
    c2.download_button("Export curves CSV", partial(lab.curves_csv, curves), file_name="convcov_curves.csv",
                       mime="text/csv", key="lab_export_csv")
    confirm = c3.checkbox("Yes, delete these", key="lab_confirm_delete")
    c4.button("Delete selected", key="lab_delete", disabled=not confirm, on_click=delete_selected,
              args=(chosen,))
