"""Comparison jobs that stopped with the server (JobManager.interrupted), as the Training Lab shows
them: what each was, the runs it finished (saved in its comparison), Resume (the runs left, followed
in the page's job slot like a job started there) and Set aside (keep the comparison as it is).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from . import background, lab


def _set_aside(job_id: int) -> None:
    try:
        background.job_manager().comparisons.set_aside(job_id)
    except ValueError:  # resumed or set aside in another tab meanwhile
        pass


def show(slot: str) -> None:
    """Every interrupted job with its finished runs, Resume and Set aside."""
    for job in background.job_manager().interrupted():
        record = job.record
        st.warning(lab.interrupted_text(job))
        if job.finished:
            st.dataframe(pd.DataFrame(lab.finished_rows(job)), hide_index=True, key=f"{slot}.finished.{record.id}")
        resume, aside, _ = st.columns([1, 1, 3])
        resume.button(f"Resume: run the {job.n_left} left", key=f"{slot}.resume.{record.id}", type="primary",
                      on_click=background.resume, args=(slot, record.id, record.plan.base.batch_size))
        aside.button("Set aside", key=f"{slot}.aside.{record.id}", on_click=_set_aside, args=(record.id,),
                     help="Keep its finished runs as a cancelled comparison under History, and stop offering "
                          "to resume it.")
