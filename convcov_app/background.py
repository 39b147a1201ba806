"""Background jobs for the app pages: the server's one JobManager and a fragment showing a job's progress.

A page starts a job with `start(slot, ...)` from a button callback. The job id lives in
st.session_state under the page's `slot`, so a visitor can leave the page and come back to it.
`progress(slot, ...)` draws the bar (ETA, images/s), Cancel and optional live content from a
fragment that refreshes on a timer without rerunning the page; when the job ends it reruns the
page once, and `finished(slot)` gives the job's final status and result.

Who started a job: each visitor gets a random token, kept in the session and in the page's URL
(`?visitor=...`), and a job is submitted with the owner "<token>/<slot>". A reload (or the same
URL in another tab) keeps the token, so `running(slot)` finds the visitor's running job in the job
manager's list again, with its live curves and Cancel; anyone else sees it as another visitor's
job with its progress, and only its owner gets Cancel.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Callable

import streamlit as st

from convcov_core import paths, settings
from convcov_core.jobs import Busy, JobManager, JobStatus
from convcov_core.text import duration

from . import lab

REFRESH_S = settings.refresh_seconds()
VISITOR = "visitor"  # the URL query parameter holding the visitor's token
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def job_manager() -> JobManager:
    """The server's background job runner: its job limit (CONVCOV_MAX_JOBS) and size cap
    (CONVCOV_MAX_JOB_SAMPLES) apply to every visitor of every page that uses it. One per run store
    ($CONVCOV_HOME/runs.db), which it saves to."""
    return _manager_for(str(paths.runs_path()))


@st.cache_resource
def _manager_for(store_path: str) -> JobManager:
    return JobManager(store_path=store_path)


def _key(slot: str, what: str) -> str:
    return f"{slot}.{what}"


def visitor() -> str:
    """This visitor's token: the session's, else a well-formed one from the URL (a reload), else a
    new random one; written back to the URL, where page navigation drops it."""
    token = st.session_state.get(VISITOR) or st.query_params.get(VISITOR, "")
    if not TOKEN.fullmatch(token):
        token = secrets.token_urlsafe(16)
    st.session_state[VISITOR] = token
    if st.query_params.get(VISITOR) != token:
        st.query_params[VISITOR] = token
    return token


def _owner(slot: str) -> str:
    return f"{visitor()}/{slot}"


def start(slot: str, kind: str, target, *, batch_size: int = 0, **submit_kwargs) -> None:
    """Submit a job (JobManager.submit arguments); a refusal (server busy, job too large, bad
    settings) is kept as a message that `show_message` displays."""
    _follow_new(slot, batch_size, lambda owner: job_manager().submit(kind, target, owner=owner, **submit_kwargs))


def resume(slot: str, job_id: int, batch_size: int = 0) -> None:
    """Run the rest of an interrupted comparison job (JobManager.resume), followed in this slot as
    a job started here; a refusal kept as start's are."""
    _follow_new(slot, batch_size, lambda owner: job_manager().resume(job_id, owner=owner))


def _follow_new(slot: str, batch_size: int, submit: Callable[[str], int]) -> None:
    state = st.session_state
    try:
        job_id = submit(_owner(slot))
    except Busy as err:
        state[_key(slot, "message")] = ("warning", f"The server is busy. {err}")
        return
    except ValueError as err:  # JobTooLarge is a ValueError
        state[_key(slot, "message")] = ("error", str(err))
        return
    state[_key(slot, "job")] = job_id
    state[_key(slot, "batch")] = batch_size
    for what in ("message", "finished", "cancelling", "found_again"):
        state.pop(_key(slot, what), None)


def show_message(slot: str) -> None:
    """The last refusal or outcome message of this slot, if any."""
    if _key(slot, "message") in st.session_state:
        kind, text = st.session_state[_key(slot, "message")]
        getattr(st, kind)(text)


def running(slot: str) -> int | None:
    """The id of this visitor's job in this slot while it runs: the one this session follows, else
    one the visitor started from this slot before a reload (found in the job manager's list)."""
    job_id = st.session_state.get(_key(slot, "job"))
    if job_id is None:
        owner = _owner(slot)
        job_id = next((j.id for j in job_manager().list_jobs() if j.running and j.owner == owner), None)
        if job_id is not None:
            follow(slot, job_id)
            st.session_state[_key(slot, "found_again")] = True
    return job_id


def follow(slot: str, job_id: int) -> None:
    """Show a running job in this slot that this session did not start (a page reloaded while its
    job runs finds the job again by what it is, e.g. its label)."""
    st.session_state[_key(slot, "job")] = job_id


def may_cancel(status: JobStatus, slot: str) -> bool:
    """Whether this visitor may cancel the job: its owner (or anyone, for a job without one)."""
    return status.owner is None or status.owner == _owner(slot)


def _cancel(slot: str, job_id: int) -> None:
    job_manager().cancel(job_id)
    st.session_state[_key(slot, "cancelling")] = True


@st.fragment(run_every=REFRESH_S)
def progress(slot: str, live: Callable | None = None, what: str = "Training",
             describe: Callable[[JobStatus], str] | None = None) -> None:
    """Progress bar with time left and images/s (or `describe(status)`), a Cancel button, and
    `live(events)` (e.g. curves); refreshed every REFRESH_S seconds. When the job ends the page
    reruns once."""
    job_id = running(slot)
    if job_id is None:
        return
    manager = job_manager()
    try:
        status = manager.status(job_id)
    except ValueError:  # forgotten by the manager (server restarted): nothing left to show
        st.session_state.pop(_key(slot, "job"), None)
        st.rerun()
    if status.running:
        cancelling = st.session_state.get(_key(slot, "cancelling"), False)
        text = describe(status) if describe is not None else lab.progress_text(
            status.last_event, status.eta_s, time.time() - status.created,
            st.session_state.get(_key(slot, "batch"), 0) or 0)
        prefix = "Stopping after the current step… " if cancelling else f"{what}: "
        if st.session_state.get(_key(slot, "found_again")):
            st.caption(f"Your job, found again after a reload: {status.label}. The settings above are "
                       "this page's defaults, not this job's.")
        st.progress(status.progress, text=prefix + text)
        if may_cancel(status, slot):
            st.button("Cancel", key=_key(slot, "cancel"), on_click=_cancel, args=(slot, job_id),
                      disabled=cancelling, help="Stops after the current step; finished runs are kept.")
        else:
            st.caption("Started by another visitor: only they can cancel it.")
        if live is not None:
            live(manager.events(job_id))
        return
    st.session_state.pop(_key(slot, "job"), None)
    st.session_state[_key(slot, "finished")] = job_id
    st.rerun()


def finished(slot: str) -> tuple[JobStatus, object] | None:
    """(status, result) of this slot's last finished job, while the manager remembers it."""
    job_id = st.session_state.get(_key(slot, "finished"))
    if job_id is None:
        return None
    manager = job_manager()
    try:
        return manager.status(job_id), manager.result(job_id)
    except ValueError:
        return None


def others_running(slot: str) -> list[JobStatus]:
    """Jobs running on this server that this visitor did not start from this slot."""
    mine = running(slot)
    return [s for s in job_manager().list_jobs() if s.running and s.id != mine]


@st.fragment(run_every=3 * REFRESH_S)
def busy_notice(slot: str) -> None:
    """While another job runs on the server: what it is, how far along, and when to try again;
    reruns the page when it ends."""
    jobs = others_running(slot)
    if not jobs:
        st.rerun()
    job = jobs[0]
    whose = "your job on another page" if (job.owner or "").startswith(f"{visitor()}/") else "another visitor's job"
    st.info(f"The server is busy: {whose} is running ({job.label}; {100 * job.progress:.0f}% done, "
            f"about {duration(job.eta_s)} left). This server runs {job_manager().max_jobs} training "
            "job(s) at a time: start yours when it has finished (this note updates by itself).")
    st.progress(job.progress)
