"""Comparison jobs that outlive their server: a job is recorded with its plan (job_records) and its
comparison stored, still empty, before it trains; each run is stored in that comparison as soon as it
finishes, and the comparison's table and status are written when the job ends. After the server
died mid-job (killed, even with SIGKILL), the job is listed as interrupted with the runs it
finished, and resuming it trains only the runs its comparison lacks, into the same comparison.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

from .compare import ComparisonPlan, ComparisonResult, compare, paired_references
from .job_records import JobRecord, JobRecords
from .runs import RunStore, RunSummary
from .sqlite_file import StoreReadOnly


@dataclass
class InterruptedJob:
    """An interrupted job as a page lists it: its record and the runs it had finished (stored)."""

    record: JobRecord
    finished: list[RunSummary]

    @property
    def n_left(self) -> int:
        return self.record.plan.n_runs - len(self.finished)


def comparison_label(plan: ComparisonPlan, where: str = "") -> str:
    """How a comparison job is named in lists: "compare a, b on mnist5k (convmixer-64/8), 3 seed(s)" + where."""
    return (f"compare {', '.join(plan.variants)} on {plan.base.dataset} ({plan.base.model}), "
            f"{len(plan.seeds)} seed(s){where}")


class ComparisonJobs:
    """Recorded comparison jobs of one run store: start, list the interrupted ones, resume, set aside."""

    def __init__(self, store: RunStore):
        self.store = store
        self.records = JobRecords(store.path)

    def start(self, plan: ComparisonPlan, label: str, owner: str | None = None, name: str | None = None,
              metric: str = "test_acc"):
        """Record a new job and its empty comparison, judged by `metric` (compare.METRICS); the job's
        work, fn(callback) -> ComparisonResult. StoreReadOnly before any training when nothing can be saved."""
        empty = ComparisonResult(plan.base, plan.variants, plan.seeds, runs={}, rows=[], verdicts=[], wall_time=None,
                                 status="running", references=paired_references(plan.variants, plan.references),
                                 metric=metric)
        comparison_id = self.store.save_comparison(empty, name=name)
        job_id = self.records.add(plan, comparison_id, label, owner, name)
        return functools.partial(self._run, job_id, plan, comparison_id, name)

    def resume(self, job_id: int):
        """Take an interrupted job over: (its record, its work, which trains only the runs its stored
        comparison lacks). ValueError when it is not interrupted (resumed already)."""
        record = self.records.claim(job_id)
        self.store.set_comparison_status(record.comparison_id, "running")
        return record, functools.partial(self._run, record.id, record.plan, record.comparison_id, record.name)

    def set_aside(self, job_id: int) -> None:
        """Keep an interrupted job's comparison as it is (status "cancelled") and stop listing the job."""
        record = self.records.claim(job_id, "cancelled")
        self.store.set_comparison_status(record.comparison_id, "cancelled")

    def interrupted(self) -> list[InterruptedJob]:
        """Jobs whose server died before they ended, newest first, each with its finished runs; their
        comparisons are marked "interrupted" (where the store can be written)."""
        records = self.records.interrupted()
        if not records:
            return []
        statuses = {c.id: c.status for c in self.store.list_comparisons()}
        for record in records:
            if statuses.get(record.comparison_id) == "running":
                try:
                    self.store.set_comparison_status(record.comparison_id, "interrupted")
                except StoreReadOnly:
                    pass
        runs = self.store.list()
        return [InterruptedJob(record, sorted((r for r in runs if r.comparison_id == record.comparison_id),
                                              key=lambda r: r.id)) for record in records]

    def _run(self, job_id: int, plan: ComparisonPlan, comparison_id: int, name: str | None, callback):
        """compare() over the runs the stored comparison lacks, each stored as it finishes; then the
        comparison's table (or, with no run at all, the comparison removed) and the job's state. A
        job that fails keeps its finished runs in a comparison marked "failed"."""
        try:
            stored = self.store.get_comparison(comparison_id)
            result = compare(plan.base, plan.variants, plan.seeds, callback, references=plan.references,
                             metric=stored.metric, ensemble=plan.ensemble,
                             finished=[r for runs in stored.runs.values() for r in runs],
                             on_result=lambda run: self.store.save(run, name=name, comparison_id=comparison_id))
        except BaseException:
            with contextlib.suppress(Exception):  # the job's own error is the one to report
                self.records.end(job_id, "failed")
                self._end(comparison_id, "failed")
            raise
        result.id = self._end(comparison_id, result.status, result)
        self.records.end(job_id, "done" if result.status == "ok" else "cancelled")
        return result

    def _end(self, comparison_id: int, status: str, result: ComparisonResult | None = None) -> int | None:
        """Write the ended comparison (its table from `result`, else only its status); one without
        any run is removed. Its id, or None when removed."""
        runs = result.runs if result is not None else self.store.get_comparison(comparison_id).runs
        if not any(runs.values()):
            self.store.delete_comparison(comparison_id)
            return None
        if result is None:
            self.store.set_comparison_status(comparison_id, status)
        else:
            result.id = comparison_id
            self.store.update_comparison(result)
        return comparison_id
