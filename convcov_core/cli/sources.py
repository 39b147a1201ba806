"""Where the commands' networks and covariances come from: the run store (--db), the bundled example,
covariance files, saved covariance sets."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import covariance, examples, learned_sets
from ..matrix_files import load_matrix
from ..train import RunResult


def store(args):
    """The run store --db names (default $CONVCOV_HOME/runs.db)."""
    from ..runs import RunStore
    return RunStore(args.db)


def writable_store(args):
    """The run store --db names, once it is known that results can be saved there: a read-only store
    refuses (StoreReadOnly, one line and exit 2) before any training."""
    run_store = store(args)
    run_store.check_writable()
    return run_store


def run_or_example(args, run_id) -> RunResult:
    """A stored run, or the bundled example when run_id is None or "example"."""
    return examples.load_example() if run_id in (None, "example") else store(args).get(run_id)


def covariances_from_file(path: Path) -> list:
    """Per-layer covariances from a matrix file (learned_sets.covariances_from_matrix). A layer that is not
    positive semi-definite is named: the learned init uses its nearest PSD matrix."""
    covariances = learned_sets.covariances_from_matrix(load_matrix(str(path)), str(path))
    for layer in learned_sets.non_psd_layers(covariances):
        print(f"convcov: note: layer {layer} of {path} is not positive semi-definite; the learned init "
              "uses its nearest PSD matrix", file=sys.stderr)
    return covariances


def learned_covariances(args) -> list:
    """The covariances --learned-from names: a stored run's, a saved set's, a file's, or the bundled
    example's (the default)."""
    ref = args.learned_from
    if isinstance(ref, Path):
        covariances = covariances_from_file(ref)
        origin = str(ref)
    elif isinstance(ref, tuple):
        covariances = learned_sets.load_covariance_set(ref[1])
        origin = f"covariance set {ref[1]!r}"
    else:
        run = run_or_example(args, ref)
        covariances = run.covariances
        if not covariances:
            raise ValueError(f"run {ref} has no stored covariances to initialize from")
        origin = (f"the bundled example ({run.config.model} on {run.config.dataset})" if ref in (None, "example")
                  else f"run {ref} ({run.config.model} on {run.config.dataset})")
    k = covariance.kernel_size_of(covariances[0])
    print(f"learned init: {len(covariances)} layer(s) of {k} x {k} covariances from {origin}", file=sys.stderr)
    return covariances
