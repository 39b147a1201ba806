"""Page test (AppTest) of a Training Lab comparison that stopped with the server: the Lab shows it as
interrupted with the runs it finished, Resume trains only the rest into the same comparison, and
Set aside keeps it as it is."""

from convcov_app import background
from convcov_core.compare import ComparisonPlan
from convcov_core.train import TrainConfig
from helpers.jobs import interrupt
from helpers.pages import assert_clean, poll_until_finished, run_page

LAB = "convcov_app/pages/3_Training_Lab.py"
TINY = TrainConfig(dataset="noisy-bars", model="convmixer-16/2", kernel_size=5, patch_size=4, epochs=1,
                   batch_size=32, max_steps=3, device="cpu")
PLAN = ComparisonPlan(TINY, {"default": {}, "gaussian": {"init": "gaussian"}}, {}, [0])


def notices(at) -> list[str]:
    return [w.value for w in at.warning if "**Interrupted:**" in w.value]


def test_an_interrupted_comparison_is_shown_with_its_finished_run_and_resume_trains_the_rest():
    store = background.job_manager().store
    job_id = interrupt(store, PLAN, [("default", 0)], label="compare default, gaussian on noisy-bars")
    finished = store.list()[0].id
    at = run_page(LAB, timeout=120)
    [notice] = notices(at)
    assert "compare default, gaussian on noisy-bars" in notice and "1 of 2 runs finished and saved" in notice
    table = next(d.value for d in at.dataframe if "variant" in d.value)
    assert list(table["run"]) == [f"#{finished}"] and list(table["variant"]) == ["default"]
    assert "[interrupted]" in " ".join(at.multiselect(key="lab_history").options)
    assert "(Interrupted: 1 of 2 runs finished.)" in " ".join(m.value for m in at.markdown)  # the latest comparison

    at.button(key=f"lab.resume.{job_id}").click().run()
    assert_clean(at, "resume clicked")
    poll_until_finished(at)
    assert_clean(at, "resumed job finished")
    assert notices(at) == []
    shown = " ".join(m.value for m in [*at.markdown, *at.warning, *at.info, *at.success, *at.caption])
    assert "Interrupted" not in shown and "2 of 2" not in shown  # the comparison as it is now, not as cached
    [summary] = store.list_comparisons()
    stored = store.get_comparison(summary.id)
    assert stored.status == "ok" and [r.id for r in stored.runs["default"]] == [finished]
    assert [r.config.seed for r in stored.runs["gaussian"]] == [0] and len(store.list()) == 2
    assert f"Saved to the run store as comparison #{summary.id}" in " ".join(c.value for c in at.caption)


def test_set_aside_keeps_the_finished_runs_as_a_cancelled_comparison():
    store = background.job_manager().store
    job_id = interrupt(store, PLAN, [("default", 0)])
    at = run_page(LAB, timeout=120)
    assert len(notices(at)) == 1
    at.button(key=f"lab.aside.{job_id}").click().run()
    assert_clean(at, "set aside")
    assert notices(at) == []
    assert store.list_comparisons()[0].status == "cancelled"
