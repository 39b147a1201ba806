"""How long runs should take, read from the stored runs' wall times (convcov_core.throughput)."""

import dataclasses

import pytest

from convcov_app import caps, lab
from convcov_core import throughput, work
from convcov_core.runs import RunStore
from convcov_core.train import TrainConfig
from helpers.runs import fake_run

TINY = TrainConfig(model="convmixer-16/2", kernel_size=5, patch_size=4, epochs=1, batch_size=32, max_steps=5,
                   device="cpu", precision="fp32")  # as fake_run says it trained


def stored(store: RunStore, config: TrainConfig, wall_time: float, status: str = "ok") -> None:
    store.save(dataclasses.replace(fake_run(), config=config, wall_time=wall_time, status=status))


def test_runs_of_a_stored_shape_take_their_images_at_the_median_time_an_image_took(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    images = work.images_per_run(TINY)
    for seed, wall_time in enumerate((10.0, 12.0, 30.0)):
        stored(store, TINY.replace(seed=seed, init="gaussian"), wall_time)
    stored(store, TINY, 999.0, status="diverged")  # only finished runs count
    twice_as_long = TINY.replace(max_steps=10, init="impulse", seed=7)  # the init and seed set no cost
    estimate = throughput.stored_estimate([TINY, twice_as_long], store.timings())
    assert (estimate.n_runs, estimate.same_shape, estimate.stored_alike, estimate.flop_rate) == (2, 2, 3, None)
    per_image = 12.0 / images  # the median
    assert estimate.seconds == pytest.approx(per_image * (images + work.images_per_run(twice_as_long)))
    assert estimate.seconds == pytest.approx(12.0 * 3)


def test_a_shape_never_stored_goes_by_the_flop_rate_of_the_newest_runs(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    stored(store, TINY, 4.0)
    wider = TINY.replace(kernel_size=9, freeze_filters=True)  # another kernel and filter mode: another shape
    assert throughput.shape_key(wider) != throughput.shape_key(TINY)
    estimate = throughput.stored_estimate([wider], store.timings())
    rate = work.run_flops(TINY) / 4.0
    assert estimate.flop_rate == pytest.approx(rate) and (estimate.same_shape, estimate.rate_runs) == (0, 1)
    assert estimate.seconds == pytest.approx(work.run_flops(wider) / rate)


def test_nothing_stored_or_nothing_countable_gives_no_estimate(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    assert throughput.stored_estimate([TINY], store.timings()) is None
    stored(store, TINY.replace(dataset="cifar10", data_root=str(tmp_path / "nowhere")), 5.0)  # its data is gone
    assert throughput.stored_estimate([TINY], store.timings()) is None


def test_timings_are_the_newest_finished_runs_and_skip_configs_this_version_cannot_read(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    for seed in range(3):
        stored(store, TINY.replace(seed=seed), 1.0 + seed)
    with store._db.connection() as conn:  # a config this version cannot read
        conn.execute("UPDATE runs SET config = ? WHERE id = 1", ("{broken",))
    assert [(config.seed, wall, device) for config, wall, device in store.timings()] == [(2, 3.0, "cpu"),
                                                                                           (1, 2.0, "cpu")]
    assert [config.seed for config, *_ in store.timings(limit=1)] == [2]
    assert [config.seed for config, *_ in store.timings(limit=1, skip={3})] == [1]  # the example, say


def test_the_lab_says_how_long_such_runs_took_here(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    setup = lab.LabSetup(training=TINY, inits=("default", "gaussian"), n_seeds=2)
    plan = lab.plan_comparison(setup)
    summary, _ = lab.work_notes(plan, 10**9, 10**6, store.timings())
    assert "No finished run is stored here yet" in summary
    stored(store, TINY.replace(freeze_filters=True), 6.0)  # the Lab freezes the filters by default
    summary, _ = lab.work_notes(plan, 10**9, 10**6, store.timings())
    assert "Runs like these took about **24 s** here before (1 stored run of the same shape" in summary


def test_the_rough_guess_says_what_it_goes_by():
    estimate = throughput.StoredEstimate(seconds=125.0, n_runs=4, same_shape=1, stored_alike=3,
                                         flop_rate=9.6e9, rate_runs=20)
    line = caps.stored_time_line(estimate)
    assert "A rough guess: about **2 min 05 s**, at the 9.6 GFLOP/s of the last 20 runs stored here" in line
    assert "1 of the 4 runs by 3 stored runs of their shape" in line
