"""Jobs as a server killed mid-job leaves them, made without killing one."""

import sqlite3

from convcov_core.compare import ComparisonPlan
from convcov_core.comparison_jobs import ComparisonJobs
from convcov_core.runs import RunStore
from convcov_core.train import train


def interrupt(store: RunStore, plan: ComparisonPlan, finished: list[tuple[str, int]], label: str = "compare a, b",
              owner: str | None = "visitor/lab") -> int:
    """A comparison job recorded as running by a process that is gone, its comparison holding the
    runs it finished (the (variant, seed) pairs `finished`, trained here); its record id."""
    ComparisonJobs(store).start(plan, label, owner)  # its work never runs: the server died first
    comparison_id = store.list_comparisons()[0].id
    for variant, seed in finished:
        store.save(train(plan.config(variant, seed), variant=variant), comparison_id=comparison_id)
    with sqlite3.connect(store.path) as conn:
        job_id = conn.execute("SELECT MAX(id) FROM jobs").fetchone()[0]
        conn.execute("UPDATE jobs SET process = 'elsewhere 1 1' WHERE id = ?", (job_id,))
    return job_id
