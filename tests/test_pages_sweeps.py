"""Page tests (AppTest) for the Sweeps page and its presenter: a tiny grid (ConvMixer-8/1, kernel sizes
3 and 5, 2 steps of batch 16, 2 seeds) run to the end on the local pool with the heatmap, lines,
effects and a cell's runs; a reload while a sweep runs still shows it, and Cancel keeps what finished;
a bad grid or an unreachable Ray cluster gives one message and loses nothing; the regime's axes
(data, widths, patch sizes, epochs, σ schedules) build the grid, and cells whose filters are wider
than their feature map are named before a sweep runs and marked in its results."""

import importlib.util
import re
import time

import pandas as pd
import pytest

from convcov_app import background, sweeps
from convcov_core import examples, learned_sets, sweep
from convcov_core.jobs import JobStatus
from convcov_core.sweep import SweepSummary
from helpers.browser import free_port
from helpers.pages import MAX_POLLS, POLL_S, assert_clean, new_app, poll_until_finished, run_page

PAGE = "convcov_app/pages/8_Sweeps.py"
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
    at.multiselect(key="sweep_widths").set_value([8])
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


def sidebar_captions(at) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def test_default_grid_says_its_size_and_where_it_runs():
    at = run_page(PAGE, timeout=TIMEOUT)
    assert "24 trials: 4 cells × 2 schemes × 3 seeds" in markdown(at)
    assert "Varies kernel size 9, 15; filters trained, frozen" in markdown(at)
    assert any(c.value.startswith("Runs on the local pool on this machine") for c in at.caption)
    assert at.text_input(key="sweep_name").value == "sweep-1"
    assert not at.button(key="sweep_run").disabled and not at.get("progress")


def test_a_grid_over_the_servers_caps_says_so_and_cannot_start():
    at = new_app(PAGE, timeout=TIMEOUT).run()
    assert any("training arithmetic; this server allows 200,000 images and 50 TFLOP per job" in c.value
               for c in at.caption)
    at.multiselect(key="sweep_kernels").set_value(list(range(3, 53, 2))).run()  # the 300-trial grid, about 3 h
    assert not at.exception and "300 trials" in markdown(at)
    warned = [w.value for w in at.warning if "This sweep trains on" in w.value]
    assert len(warned) == 1 and "more than the 200,000 this server allows" in warned[0]
    assert at.button(key="sweep_run").disabled


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
    listed = [c.value for c in again.caption if c.value.startswith("reloaded: ")]
    assert len(listed) == 1 and listed[0].startswith("reloaded: running, 8 trials (finished: see its progress)")
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


def ray_calls(monkeypatch) -> list:
    """The addresses the page asks ray_job.probe about (which, for none, starts nothing either)."""
    calls = []
    real = sweeps.probe

    def probe(address, *args, **kwargs):
        calls.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(sweeps, "probe", probe)
    return calls


def test_without_an_address_connect_starts_no_ray_unless_the_operator_allows_it(monkeypatch):
    monkeypatch.delenv("CONVCOV_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("CONVCOV_RAY_LOCAL", raising=False)
    calls = ray_calls(monkeypatch)
    at = tiny_grid(new_app(PAGE, timeout=TIMEOUT).run())
    at.radio(key="sweep_executor").set_value("a Ray cluster").run()
    assert "No Ray cluster is set for this app (`CONVCOV_RAY_ADDRESS`), and it starts none" in sidebar_captions(at)
    assert at.info[0].value.startswith("No Ray cluster is set for this app (Connect in the sidebar says how")
    at.button(key="sweep_connect").click().run()
    assert not at.exception and not at.error and calls == []  # nothing started
    said = [i.value for i in at.sidebar.info]
    assert said == [sweeps.NO_RAY_HERE]
    assert "CONVCOV_RAY_ADDRESS" in said[0] and "CONVCOV_RAY_LOCAL=1" in said[0] and "`ray://host:10001`" in said[0]
    if importlib.util.find_spec("ray") is not None:
        import ray
        assert not ray.is_initialized()
    assert at.multiselect(key="sweep_kernels").value == [3, 5] and "8 trials" in markdown(at)
    assert not [b for b in at.get("button") if b.key == "sweep_run"]
    at.radio(key="sweep_executor").set_value("this machine (worker processes)").run()
    assert not at.button(key="sweep_run").disabled  # the way that is left

    monkeypatch.setenv("CONVCOV_RAY_LOCAL", "1")  # the operator's choice
    at = tiny_grid(new_app(PAGE, timeout=TIMEOUT).run())
    at.radio(key="sweep_executor").set_value("a Ray cluster").run()
    assert "each sweep starts a Ray of its own on this machine (`CONVCOV_RAY_LOCAL` is on)" in \
        sidebar_captions(at)
    assert at.info[0].value == "Connect to Ray in the sidebar to run there, or choose this machine."
    at.button(key="sweep_connect").click().run()
    assert_clean(at, "connected")
    assert calls == [None]
    assert any(c.value.startswith("Runs on the Ray started on this machine for each sweep: 1 node(s), ")
               for c in at.caption)
    assert not at.button(key="sweep_run").disabled
    if importlib.util.find_spec("ray") is not None:
        import ray
        assert not ray.is_initialized()  # each sweep's driver process starts its own


def test_connect_without_an_address_or_the_setting_is_refused_before_ray_is_looked_at(monkeypatch):
    monkeypatch.setattr(sweeps.importlib.util, "find_spec", lambda name: pytest.fail("Ray was looked for"))
    with pytest.raises(sweeps.RayNotConfigured, match="starts no Ray on the server by itself"):
        sweeps.connect_ray(None)


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
        sweeps.connect_ray(None, start_local=True)


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


# ---------------------------------------------------------------------------------------------
# The regime's axes: data, width, patch size, epochs, the σ schedule; k wider than the map
# ---------------------------------------------------------------------------------------------


def test_the_regime_widgets_build_their_axes_and_the_wide_cells_are_named():
    at = new_app(PAGE, timeout=TIMEOUT).run()
    assert "**2 of 4 cells marked k > map** (kernel size 15, filters trained; kernel size 15, filters frozen: " \
           "maps of 14 x 14)" in markdown(at)  # the default grid: k = 15 on mnist5k's 14 x 14 maps
    at.multiselect(key="sweep_datasets").set_value(["mnist5k", "textures"])
    at.multiselect(key="sweep_widths").set_value([32, 64])
    at.multiselect(key="sweep_patches").set_value([1, 2])
    at.multiselect(key="sweep_epochs").set_value([1, 10])
    at.multiselect(key="sweep_filters").set_value(["frozen"])
    at.run()
    assert_clean(at, "regime axes")
    assert "192 trials: 32 cells × 2 schemes × 3 seeds" in markdown(at)
    assert ("Varies kernel size 9, 15; model convmixer-32/8, convmixer-64/8; patch size 1, 2; epochs 1, 10; "
            "dataset mnist5k, textures. Every trial: batch 128, lr 0.01, filters frozen.") in markdown(at)
    assert "**4 of 32 cells marked k > map**" in markdown(at)  # k 15, patch 2, mnist5k, both widths and epochs

    at.selectbox(key="sweep_schedule").set_value(sweeps.SCHEDULES["custom"]).run()
    at.multiselect(key="sweep_sigma_first").set_value([0.5, 1.0])
    at.multiselect(key="sweep_sigma_last").set_value([3.0])
    at.run()
    assert_clean(at, "custom schedule")
    assert "384 trials: 64 cells" in markdown(at) and "σ first 0.5, 1." in markdown(at)
    assert "filters frozen, σ last 3." in markdown(at) and "a list of several values is an axis" in sidebar_captions(at)

    at.selectbox(key="sweep_schedule").set_value(sweeps.SCHEDULES["fitted"]).run()
    assert_clean(at, "fitted schedule")
    first, last = learned_sets.example_sigmas(9)
    assert "192 trials: 32 cells" in markdown(at) and f"σ first {first:g}, σ last {last:g}" in markdown(at)
    assert "rescaled by (k − 1)/8" in sidebar_captions(at) and "(the first kernel size picked)" in sidebar_captions(at)


def test_the_widgets_values_make_the_choice_and_the_choice_the_axes():
    values = {"datasets": ["textures", "mnist5k"], "kernel_sizes": [15, 9], "widths": [256, 32], "depths": [8],
              "patch_sizes": [2], "epochs": [10, 1], "filters": ["frozen", "trained"],
              "inits": ["PyTorch default (uniform)", "Gaussian covariance"], "schedule": sweeps.SCHEDULES["default"],
              "n_seeds": 2, "max_steps": 0, "batch_size": 64}
    choice = sweeps.choice_from(" g ", values)
    assert choice == sweeps.GridChoice(name="g", datasets=("textures", "mnist5k"), kernel_sizes=(9, 15),
                                       widths=(32, 256), depths=(8,), epochs=(1, 10), n_seeds=2, batch_size=64)
    assert sweeps.widget_values(choice)["sweep_widths"] == [32, 256]
    grid = sweeps.build_sweep(choice)
    assert grid.axes == {"kernel_size": [9, 15], "model": ["convmixer-32/8", "convmixer-256/8"], "epochs": [1, 10],
                         "freeze_filters": [False, True], "dataset": ["textures", "mnist5k"]}
    assert (grid.base.patch_size, grid.base.sigma_first, grid.base.sigma_last) == (2, None, None)
    assert sweeps.figure_axes(grid)["x"] == "kernel_size"
    with pytest.raises(ValueError, match="Pick at least one width"):
        sweeps.build_sweep(sweeps.GridChoice(name="g", widths=()))
    with pytest.raises(ValueError, match="Pick at least one patch size"):
        sweeps.build_sweep(sweeps.GridChoice(name="g", patch_sizes=()))


def test_the_sigma_schedules_map_to_sigma_first_and_sigma_last():
    default = sweeps.build_sweep(sweeps.GridChoice(name="g"))
    assert (default.base.sigma_first, default.base.sigma_last) == (None, None)  # 1 -> max(1, k/3) per cell
    custom = sweeps.build_sweep(sweeps.GridChoice(name="g", kernel_sizes=(9,), schedule="custom",
                                                  sigma_firsts=(0.5, 1.0), sigma_lasts=(2.0, 3.0)))
    assert custom.axes["sigma_first"] == [0.5, 1.0] and custom.axes["sigma_last"] == [2.0, 3.0]
    half = sweeps.build_sweep(sweeps.GridChoice(name="g", schedule="custom", sigma_lasts=(4.0,)))
    assert (half.base.sigma_first, half.base.sigma_last) == (None, 4.0) and "sigma_last" not in half.axes

    run = examples.load_example()
    fit_first, fit_last = learned_sets.fitted_schedule(learned_sets.layer_fits(run.covariances))
    assert run.config.kernel_size == 9 and learned_sets.example_schedule() == (fit_first, fit_last, 9)
    assert learned_sets.example_sigmas(9) == (round(fit_first, 2), round(fit_last, 2))
    assert learned_sets.example_sigmas(17) == (round(2 * fit_first, 2), round(2 * fit_last, 2))  # (k - 1) / 8
    fitted = sweeps.build_sweep(sweeps.GridChoice(name="g", kernel_sizes=(5, 9), schedule="fitted"))
    assert (fitted.base.sigma_first, fitted.base.sigma_last) == learned_sets.example_sigmas(5)  # first k, all cells
    assert "sigma_first" not in fitted.axes and fitted.axes["kernel_size"] == [5, 9]
    caption = sweeps.schedule_caption(sweeps.GridChoice(name="g", inits=("default", "orthogonal"), schedule="custom"))
    assert caption.startswith("None of the chosen schemes uses σ")


def test_the_effects_table_and_notes_mark_cells_wider_than_their_map():
    grid = sweeps.build_sweep(sweeps.GridChoice(name="g", kernel_sizes=(9, 15), filters=("trained",), n_seeds=2))
    table = pd.DataFrame([{"kernel_size": k, "init": init, "seed": seed, "test_acc": 90.0 + seed + (init == "gaussian")}
                          for k in (9, 15) for init in ("default", "gaussian") for seed in (0, 1)])
    effects = sweep.cell_effects(grid, table)
    rows = sweeps.effect_rows(effects, grid)
    assert rows[["kernel size", "map", "k > map"]].to_dict("records") == [
        {"kernel size": 9, "map": "14 x 14", "k > map": ""}, {"kernel size": 15, "map": "14 x 14", "k > map": "yes"}]
    assert not any("k > map" in note for note in sweeps.cell_notes(effects, grid, (9,)))
    assert sweeps.cell_notes(effects, grid, (15,))[-1].startswith("**k > map** (14 x 14 maps): the k x k filters")
    assert "open square on the heatmap" in sweeps.map_caption(effects)
    assert sweeps.map_caption(effects[effects["kernel_size"] == 9]) == ""
    assert "k > map: the k x k filters" in sweeps.table_caption(effects)


def test_a_running_sweep_is_listed_without_a_count_that_would_go_stale():
    """The list of stored sweeps is drawn once per page run, the progress line every refresh: the
    list leaves a running sweep's count to the progress line (it said "0 of 300" beside "8 of 300")."""
    summary = SweepSummary("s", "2024-05-01T10:00:00", 300, 0, 0, {})
    assert sweeps.sweep_label(summary) == "s: 0 of 300 trials finished, 2024-05-01 10:00 UTC"
    assert sweeps.sweep_label(summary, running=True) == ("s: running, 300 trials (finished: see its progress), "
                                                         "2024-05-01 10:00 UTC")
