"""The run store as the pages reach it: one accessor (and its sweeps), the bundled example added once,
cached reads."""

from __future__ import annotations

import logging

import streamlit as st
import torch

from convcov_core import examples, learned_sets, reach, sweep
from convcov_core.runs import RunStore
from convcov_core.sqlite_file import StoreUnreadable

from . import labels
from .background import job_manager
from .lab import covariance_set_label

log = logging.getLogger("convcov.app")


def run_store() -> RunStore:
    """The server's run store ($CONVCOV_HOME/runs.db), the one the background jobs save to."""
    return job_manager().store


def sweep_store() -> sweep.SweepStore:
    """The sweeps kept in the server's run store."""
    return _sweep_store(str(run_store().path))


@st.cache_resource(show_spinner=False)
def _sweep_store(path: str) -> sweep.SweepStore:
    return sweep.SweepStore(path)


@st.cache_data(ttl=30, show_spinner=False)
def stored_timings() -> list:
    """RunStore.timings of the server's store but the bundled example (trained on another machine),
    none while it cannot be read: what the pages' time lines go by (throughput.stored_estimate)."""
    try:
        return run_store().timings(skip={examples.stored_id(run_store())})
    except StoreUnreadable:
        return []


def store_problem() -> str | None:
    """Why the run store cannot be read (StoreUnreadable's message, with the mv that moves the file
    aside), or None. A page that reads the store in several places shows this once and leaves them out."""
    try:
        run_store()
    except StoreUnreadable as err:
        return str(err)
    return None


def add_bundled_example() -> None:
    """Put the bundled example network in the run store, once per store (see convcov_core.examples),
    so the pages that read trained filters have one on a fresh install. An unreadable store is left
    alone: every page that reads runs says so."""
    try:
        path = str(run_store().path)
    except StoreUnreadable:
        return
    _add_example_once(path)


@st.cache_resource(show_spinner=False)
def _add_example_once(store_path: str) -> None:
    """A store that cannot be written leaves the pages without the example, and the reason in the
    server log (once: the attempt is cached either way)."""
    try:
        examples.add_to_store(RunStore(store_path))
    except Exception:
        log.exception("could not add the bundled example to the run store %s", store_path)


def stored_comparison(comparison_id: int):
    """A stored comparison with its runs, read again only when its status or number of runs has
    changed (a job stores each run as it finishes, and a resumed job adds to an interrupted one)."""
    store = run_store()
    return _comparison(str(store.path), comparison_id, store.comparison_state(comparison_id))


@st.cache_data(max_entries=16, show_spinner=False)
def _comparison(store_path: str, comparison_id: int, state: tuple | None):
    return run_store().get_comparison(comparison_id)


@st.cache_data(max_entries=16, show_spinner=False)
def run_reach_warning(store_path: str, run_id: int) -> str | None:
    """reach.run_reach_warning of a stored run, once per run of the store at `store_path` (a stored
    run never changes)."""
    return reach.run_reach_warning(RunStore(store_path).get(run_id))


@st.cache_data(max_entries=64, show_spinner=False)
def stored_run(store_path: str, run_id: int):
    """Run `run_id` of the run store at `store_path`, read once (a stored run never changes)."""
    return run_store().get(run_id)


def runs_with_learned_covariances() -> list:
    """Summaries of stored runs that trained their depthwise filters and saved their covariances
    (a run with frozen filters ends with its init's covariance: nothing learned)."""
    return [s for s in run_store().list() if s.has_covariances and not s.freeze_filters]


def learned_covariances(run_id: int) -> list[torch.Tensor]:
    """The per-layer covariances saved with run `run_id` (first layer first)."""
    result = run_store().get(run_id)
    if not result.covariances:
        raise ValueError(f"run {run_id} saved no covariances")
    return [torch.as_tensor(c, dtype=torch.float64) for c in result.covariances]


def learned_sources(with_runs: bool = True) -> dict:
    """Label -> ("set", name) or ("run", id) for every source of learned covariances (the saved sets
    alone without `with_runs`: for a run store that cannot be read)."""
    sources = {covariance_set_label(s): ("set", s.name) for s in learned_sets.list_covariance_sets()}
    for r in runs_with_learned_covariances() if with_runs else ():
        sources[f"run {labels.run_label(r)}"] = ("run", r.id)
    return sources


def example_source(sources: dict) -> str | None:
    """The label of the bundled example network among `sources`, if it is in the run store."""
    example_id = examples.stored_id(run_store())
    return next((label for label, ref in sources.items() if ref == ("run", example_id)), None)
