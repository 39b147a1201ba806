"""Fuzz test: for every page, 100 random sequences of 2 interactions (AppTest, fixed seeds so a
failure replays; a fresh session every 10 sequences) with zero uncaught exceptions and zero
"Unexpected error" messages. The counts are printed at the end of the run (conftest.py gathers
them from every xdist worker). CONVCOV_FUZZ_SEQUENCES changes the number.
Each page's sequences run as two tests with their own seeds, so pytest-xdist can share them out.

Buttons that start training jobs or connect to Ray are left out (they are exercised by the page tests
with tiny configurations); everything else is fair game, uploads of good and broken files included."""

import io
import os

import numpy as np
import pytest
import torch

from convcov_core import examples
from convcov_core.covariance import gaussian
from convcov_core.runs import RunStore
from helpers.pages import fuzz_page, page_scripts

SEQUENCES = int(os.environ.get("CONVCOV_FUZZ_SEQUENCES", "100"))
PARTS = 2
STEPS = 2
LONG_JOBS = ("lab_run", "lab_estimate", "lc_train", "fa_train", "claims_run_quick", "sweep_run", "sweep_estimate",
             "sweep_resume", "sweep_connect")
WITHOUT_WIDGETS = ("app.py",)  # Home: text, figures and page links only
SCRIPTS = ["app.py", *page_scripts()]


@pytest.fixture(autouse=True, scope="module")
def _bundled_example_in_the_store(_isolated_convcov_home):
    """Pages are fuzzed as a fresh install shows them: with the bundled example in the run store
    (whichever xdist worker runs them, and whether or not app.py ran first)."""
    examples.add_to_store(RunStore())


def _uploads() -> dict[str, bytes]:
    good, pt = io.BytesIO(), io.BytesIO()
    np.save(good, gaussian(5, 1.5).numpy())
    torch.save({"stem.0.weight": torch.zeros(4, 1, 2, 2)}, pt)
    return {"cov.npy": good.getvalue(), "empty.npy": b"", "noise.pt": os.urandom(512),
            "state.pt": pt.getvalue(), "cut.pt": pt.getvalue()[:100], "text.safetensors": b"hello"}


@pytest.mark.parametrize("part", range(PARTS))
@pytest.mark.parametrize("script", SCRIPTS)
def test_random_interaction_sequences_never_crash_a_page(script, part, record_property):
    seed = sum(map(ord, script)) + part  # fixed per page and part
    sequences = SEQUENCES // PARTS + (part < SEQUENCES % PARTS)
    counts = fuzz_page(script, sequences=sequences, steps=STEPS, seed=seed, uploads=_uploads(),
                       skip=LONG_JOBS, timeout=60)
    record_property("fuzz", f"{script} (part {part + 1} of {PARTS}): {counts['sequences']} sequences, "
                            f"{counts['interactions']} interactions (seed {seed}), "
                            f"{counts['error_messages']} renders with a user-facing error message, "
                            "0 uncaught exceptions")
    assert counts["sequences"] == sequences
    planned = 0 if script in WITHOUT_WIDGETS else sequences * STEPS
    assert counts["interactions"] == planned, f"{script}: {counts['interactions']} of {planned} interactions made"
