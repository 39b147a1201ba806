"""The Training Lab at the largest settings its widgets allow (AppTest): one click can neither train on
more images than CONVCOV_MAX_JOB_SAMPLES nor start a run that needs more memory than the server
has free; either way Run gives one clear message and no job starts."""

import pytest

from convcov_app import background
from convcov_core import jobs
from helpers.pages import assert_clean, new_app

LAB = "convcov_app/pages/3_Training_Lab.py"
FREE = 16 * 2**30  # the server's free memory in these tests, whatever the test machine has


def largest_setup(at, *, epochs: int, seeds: int, max_steps: int):
    """Every size widget of the Lab at its largest (patch size at its smallest), every init scheme."""
    at.selectbox(key="lab_model").set_value("custom ConvMixer").run()
    at.select_slider(key="lab_width").set_value(at.select_slider(key="lab_width").options[-1])
    at.slider(key="lab_depth").set_value(at.slider(key="lab_depth").max)
    at.slider(key="lab_k").set_value(at.slider(key="lab_k").max)
    at.number_input(key="lab_patch").set_value(at.number_input(key="lab_patch").min)
    at.select_slider(key="lab_batch").set_value(at.select_slider(key="lab_batch").options[-1])
    at.multiselect(key="lab_inits").set_value(at.multiselect(key="lab_inits").options)
    at.number_input(key="lab_epochs").set_value(epochs)
    at.number_input(key="lab_seeds").set_value(seeds)
    at.number_input(key="lab_max_steps").set_value(max_steps)
    at.run()
    assert_clean(at, "largest setup", allow_errors=True)
    return at


@pytest.mark.parametrize("epochs, seeds, max_steps, refusal", [
    (100, 10, 0, "CONVCOV_MAX_JOB_SAMPLES"),  # every budget widget at its largest: too many images
    (1, 1, 1, "GiB free"),  # one step of each scheme, far under the image cap: too much memory
])
def test_the_largest_settings_are_refused_with_one_message_and_start_nothing(monkeypatch, epochs, seeds,
                                                                             max_steps, refusal):
    monkeypatch.setattr(jobs, "available_bytes", lambda device: FREE)
    monkeypatch.setattr(background.job_manager(), "max_tflop", 10**6)  # the arithmetic cap has tests of its own
    at = largest_setup(new_app(LAB, timeout=120).run(), epochs=epochs, seeds=seeds, max_steps=max_steps)
    at.button(key="lab_run").click().run()
    assert_clean(at, "Run clicked", allow_errors=True)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and refusal in errors[0], errors
    assert not at.get("progress") and background.job_manager().list_jobs() == []


def test_estimate_time_at_the_largest_model_is_refused_instead_of_training_it(monkeypatch):
    monkeypatch.setattr(jobs, "available_bytes", lambda device: FREE)
    at = largest_setup(new_app(LAB, timeout=120).run(), epochs=1, seeds=1, max_steps=1)
    at.button(key="lab_estimate").click().run()
    assert_clean(at, "Estimate clicked", allow_errors=True)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Not timed: one run of this job would need about"), errors
