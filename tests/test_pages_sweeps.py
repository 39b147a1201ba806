"""Page tests (AppTest) for the Sweeps page and its presenter: a tiny grid (ConvMixer-8/1, kernel sizes
3 and 5, 2 steps of batch 16, 2 seeds) run to the end on the local pool with the heatmap, lines,
effects and a cell's runs; a reload while a sweep runs still shows it, and Cancel keeps what finished;
a bad grid or an unreachable Ray cluster gives one message and loses nothing."""

import re
import time

import pandas as pd
import pytest

from convcov_app import background, sweeps
from convcov_core import sweep
from convcov_core.jobs import JobStatus
from helpers.browser import free_port
from helpers.pages import MAX_POLLS, POLL_S, assert_clean, new_app, poll_until_finished, run_page

PAGE = "pages/8_Sweeps.py"
TIMEOUT = 120


@pytest.fixture(autouse=True)
def no_job_left_running():
    """The job manager is shared by the whole process (st.cache_resource): stop what a test left."""
    yield
    manager = background.job_manager()
    for status in manager.list_jobs():
        if status.running:
            manager.cancel(status.id)
            manager.wait(status.id, 120)


def tiny_grid(at, *, kernel_sizes=(3, 5), workers=2, max_steps=2):
    """ConvMixer-8/1, trained filters, default vs gaussian, 2 seeds, a few steps of batch 16."""
    at.multiselect(key="sweep_kernels").set_value(list(kernel_sizes))
    at.select_slider(key="sweep_width").set_value(8)
    at.multiselect(key="sweep_depths").set_value([1])
    at.multiselect(key="sweep_filters").set_value(["trained"])
    at.number_input(key="sweep_seeds").set_value(2)
    at.number_input(key="sweep_max_steps").set_value(max_steps)
    at.select_slider(key="sweep_batch").set_value(16)
    at.number_input(key="sweep_workers").set_value(workers)
    at.run()
    assert_clean(at, "tiny grid")
    return at


def markdown(at) -> str:
    return " ".join(m.value for m in at.markdown)


def test_default_grid_says_its_size_and_where_it_runs():
    at = run_page(PAGE, timeout=TIMEOUT)
    assert "24 trials: 4 cells × 2 schemes × 3 seeds" in markdown(at)
    assert "Varies kernel size 9, 15; filters trained, frozen" in markdown(at)
    assert any(c.value.startswith("Runs on the local pool on this machine") for c in at.caption)
    assert at.text_input(key="sweep_name").value == "sweep-1"
    assert not at.button(key="sweep_run").disabled and not at.get("progress")


@pytest.mark.parametrize("change, message", [
    (lambda at: at.multiselect(key="sweep_kernels").set_value([]), "Pick at least one kernel size."),
    (lambda at: at.multiselect(key="sweep_inits").set_value(["Gaussian covariance"]), "Pick at least two init"),
    (lambda at: at.text_input(key="sweep_name").set_value("my sweep"), "sweep name 'my sweep'"),
    (lambda at: (at.multiselect(key="sweep_kernels").set_value(list(range(3, 53, 2))),
                 at.multiselect(key="sweep_epochs").set_value([1, 2]),
                 at.number_input(key="sweep_seeds").set_value(100)),  # 25 x 2 x 2 cells x 2 schemes x 100 seeds
     "20,000 trials (100 cells x 2 scheme(s) x 100 seed(s)), more than the 10,000"),
])
def test_a_bad_grid_gives_one_message_and_no_run_button(change, message):
    at = new_app(PAGE, timeout=TIMEOUT).run()
    change(at)
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and message in at.error[0].value
    assert not [b for b in at.get("button") if b.key == "sweep_run"]


def test_a_tiny_sweep_runs_to_the_end_and_shows_its_effects_and_runs():
    at = tiny_grid(new_app(PAGE, timeout=TIMEOUT).run())
    assert "8 trials: 2 cells × 2 schemes × 2 seeds" in markdown(at)
    at.button(key="sweep_estimate").click().run()
    assert "Estimated time: **about" in markdown(at) and "for 8 trials" in markdown(at)
    at.button(key="sweep_run").click().run()
    assert_clean(at, "run clicked")
    assert at.button(key="sweep_run").disabled and at.get("progress")
    texts = poll_until_finished(at)
    assert_clean(at, "finished")
    assert any(" of 8 trials finished" in t for t in texts), texts
    assert at.success[0].value.startswith("Sweep sweep-1: ran 8 trials")
    assert at.text_input(key="sweep_name").value == "sweep-2"  # ready for the next grid
    assert at.selectbox(key="sweep_open").value == "sweep-1"

    keys = [c.key for c in at.get("plotly_chart")]
    assert keys[:2] == ["sweep_heatmap", "sweep_lines"]
    effects = at.dataframe[0].value
    assert list(effects["kernel size"]) == [3, 5] and list(effects["seeds"]) == [2, 2]
    assert all(n == "-" or int(n) >= 2 for n in effects["seeds to resolve"])
    notes = [m.value for m in at.markdown if m.value.startswith("**gaussian − default:**")]
    assert len(notes) == 1 and "(95% interval " in notes[0] and "2 paired seeds" in notes[0]
    assert "seeds would resolve an effect of this size at this spread." in notes[0] or "1,000" in notes[0]
    per_seed = at.dataframe[1].value
    assert list(per_seed.columns) == ["seed", "default %", "gaussian %", "gaussian − default"]
    assert list(per_seed["seed"]) == [0, 1] and per_seed["default %"].notna().all()
    assert {"sweep_cell_loss", "sweep_cell_accuracy"} <= set(keys)

    at.selectbox(key="sweep_cell").set_value("kernel size 5").run()
    assert_clean(at, "second cell")
    stored = sweep.trial_table(sweep.SweepStore(background.job_manager().store.path).get("sweep-1"),
                               sweep.SweepStore(background.job_manager().store.path))
    expected = stored[(stored["kernel_size"] == 5) & (stored["init"] == "gaussian")]["test_acc"].tolist()
    assert at.dataframe[1].value["gaussian %"].tolist() == pytest.approx(expected)


def test_a_reload_while_a_sweep_runs_still_shows_it_and_cancel_keeps_what_finished():
    first = tiny_grid(new_app(PAGE, timeout=TIMEOUT).run(), kernel_sizes=(7, 9), workers=1, max_steps=40)
    first.text_input(key="sweep_name").set_value("reloaded").run()
    first.button(key="sweep_run").click().run()
    assert first.get("progress")

    other = run_page(PAGE, timeout=TIMEOUT)  # another visitor: the sweep's progress, no Cancel
    assert other.get("progress") and "sweeps.cancel" not in [b.key for b in other.button]
    again = new_app(PAGE, timeout=TIMEOUT)  # a new session at the same URL: what a reload gets
    again.query_params[background.VISITOR] = first.query_params[background.VISITOR]
    again.run()
    assert_clean(again, "reloaded")
    assert again.get("progress") and again.subheader[0].value == "Running: reloaded"
    assert "sweep_live_cells" in [c.key for c in again.get("plotly_chart")]
    assert again.selectbox(key="sweep_open").value == "reloaded"
    for _ in range(MAX_POLLS):  # until a trial is in the store
        finished = re.match(r"Sweep: (\d+) of 8 trials finished", again.get("progress")[0].proto.text)
        if finished and int(finished[1]) > 0:
            break
        time.sleep(POLL_S)
        again.run()
    again.button(key="sweeps.cancel").click().run()
    poll_until_finished(again)
    assert_clean(again, "cancelled")
    assert "Sweep stopped" in again.info[0].value
    resume = again.button(key="sweep_resume")
    n_left = int(resume.proto.label.split("run the ")[1].split(" ")[0])
    assert 0 < n_left < 8 and not resume.disabled
    assert "sweep_stopped_cells" in [c.key for c in again.get("plotly_chart")]
    summary = next(s for s in sweep.SweepStore(background.job_manager().store.path).list() if s.name == "reloaded")
    assert summary.n_finished == 8 - n_left


def test_an_unreachable_ray_cluster_is_one_message_and_nothing_is_lost(monkeypatch):
    monkeypatch.setenv("CONVCOV_RAY_ADDRESS", f"127.0.0.1:{free_port()}")
    at = tiny_grid(new_app(PAGE, timeout=TIMEOUT).run())
    at.radio(key="sweep_executor").set_value("a Ray cluster").run()
    assert "Connect to Ray in the sidebar" in at.info[0].value
    at.button(key="sweep_connect").click().run()
    assert not at.exception and len(at.error) == 1
    assert at.error[0].value.startswith("No Ray cluster to run on: no Ray cluster answers at 127.0.0.1:")
    assert at.multiselect(key="sweep_kernels").value == [3, 5] and "8 trials" in markdown(at)
    assert not [b for b in at.get("button") if b.key == "sweep_run"]


# ---------------------------------------------------------------------------------------------
# The presenter
# ---------------------------------------------------------------------------------------------


def test_lists_of_one_value_go_into_the_base_config_and_longer_ones_become_axes():
    grid = sweeps.build_sweep(sweeps.GridChoice(name="g", depths=(2, 4), kernel_sizes=(5,), filters=("frozen",)))
    assert list(grid.axes) == ["model"] and grid.axes["model"] == ["convmixer-64/2", "convmixer-64/4"]
    assert (grid.base.kernel_size, grid.base.freeze_filters, grid.seeds) == (5, True, [0, 1, 2])
    assert sweeps.setup_text(grid) == ("Varies model convmixer-64/2, convmixer-64/4. Every trial: on mnist5k, "
                                       "k = 5, patch 2, 1 epoch, batch 128, lr 0.01, filters frozen. Schemes: "
                                       "gaussian against default; seeds 0-2.")


def test_ray_that_is_not_installed_is_named_with_how_to_get_it(monkeypatch):
    monkeypatch.setattr(sweeps.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"Ray is not installed on this server: pip install 'convcov\[ray\]'"):
        sweeps.connect_ray(None)


def test_the_running_sweep_is_found_by_its_job_label():
    def job(i, label, state="running"):
        return JobStatus(i, "task", label, state, 0.5, "", 0.0, None, 0, None, None, None)

    grid = sweeps.build_sweep(sweeps.GridChoice(name="k-scan.v2"))
    label = sweeps.job_label(grid, 24, sweep.LocalPool(1))
    jobs = [job(3, "compare default, gaussian on mnist5k"), job(2, label, "done"), job(1, label)]
    assert sweeps.running_sweep(jobs) == (1, "k-scan.v2")
    assert sweeps.running_sweep(jobs[:2]) is None


def test_power_notes_say_what_the_seeds_can_resolve():
    row = dict(n=5, diff_mean=1.2, seeds_needed=18.0)
    assert sweeps.power_note(row) == "18 seeds would resolve an effect of this size at this spread"
    assert sweeps.power_note(dict(row, n=1)) == "needs 2 paired seeds for an interval"
    assert sweeps.power_note(dict(row, seeds_needed=float("nan"))).startswith("over 1,000 seeds")
    assert sweeps.power_note(dict(row, diff_mean=0.0)) == "no difference to resolve"


def test_cell_counts_read_finished_and_failed_trials_from_the_table():
    grid = sweeps.build_sweep(sweeps.GridChoice(name="g", kernel_sizes=(3, 5), filters=("trained",), n_seeds=2))
    statuses = ["ok", "pending", "failed", "ok"] + ["pending"] * 4
    table = pd.DataFrame({"kernel_size": [3, 3, 3, 3, 5, 5, 5, 5], "status": statuses})
    counts = sweeps.cell_counts(grid, table)
    assert counts.to_dict("records") == [
        {"kernel_size": 3, "n_total": 4, "n_finished": 3, "n_failed": 1},
        {"kernel_size": 5, "n_total": 4, "n_finished": 0, "n_failed": 0}]


def test_figure_axes_put_kernel_size_across_and_filters_side_by_side():
    grid = sweeps.build_sweep(sweeps.GridChoice(name="g", epochs=(1, 3), n_seeds=2))
    assert sweeps.figure_axes(grid) == {"x": "kernel_size", "y": "epochs", "against": "kernel_size",
                                        "lines": "epochs", "panels": "freeze_filters"}
