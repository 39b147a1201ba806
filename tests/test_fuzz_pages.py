"""Fuzz test: for every page, 100 random sequences of 2 interactions (AppTest, fixed seeds so a
failure replays; a fresh session every 10 sequences) with zero uncaught exceptions and zero
"Unexpected error" messages. The counts are printed. CONVCOV_FUZZ_SEQUENCES changes the number.

Buttons that start training jobs are left out (they are exercised by the page tests with tiny
configurations); everything else is fair game, uploads of good and broken files included."""

import io
import os

import numpy as np
import pytest
import torch
from page_helpers import fuzz_page

from app_support import discover_pages
from convcov_core.covariance import gaussian

SEQUENCES = int(os.environ.get("CONVCOV_FUZZ_SEQUENCES", "100"))
STEPS = 2
LONG_JOBS = ("lab_run", "lab_estimate", "lc_train", "train", "run_quick")
SCRIPTS = ["app.py"] + [str(entry.path.relative_to(entry.path.parents[1])) for entry in discover_pages()]


def _uploads() -> dict[str, bytes]:
    good, pt = io.BytesIO(), io.BytesIO()
    np.save(good, gaussian(5, 1.5).numpy())
    torch.save({"stem.0.weight": torch.zeros(4, 1, 2, 2)}, pt)
    return {"cov.npy": good.getvalue(), "empty.npy": b"", "noise.pt": os.urandom(512),
            "state.pt": pt.getvalue(), "cut.pt": pt.getvalue()[:100], "text.safetensors": b"hello"}


@pytest.mark.parametrize("script", SCRIPTS)
def test_random_interaction_sequences_never_crash_a_page(script, capsys):
    seed = sum(map(ord, script))  # fixed per page
    counts = fuzz_page(script, sequences=SEQUENCES, steps=STEPS, seed=seed, uploads=_uploads(),
                       skip=LONG_JOBS, timeout=60)
    with capsys.disabled():
        print(f"\nfuzz {script}: {counts['sequences']} sequences, {counts['interactions']} interactions "
              f"(seed {seed}), {counts['error_messages']} renders with a user-facing error message, "
              "0 uncaught exceptions")
    assert counts["sequences"] == SEQUENCES
