"""How many CPU threads a run takes when its config leaves it open (convcov_core/train/threads.py)."""

import time

import pytest
import torch

from convcov_core.train import TrainConfig, threads, train

TINY = TrainConfig(model="convmixer-16/2", kernel_size=5, patch_size=4, epochs=1, batch_size=32, max_steps=2,
                   device="cpu")


@pytest.mark.parametrize("torch_threads, cores, others, expected", [
    (2, 2, 0.0, 2),    # a quiet machine: every thread torch would use
    (2, 2, 0.4, 2),    # a little other work: still two
    (2, 2, 0.6, 1),    # over half a core busy elsewhere: one
    (2, 2, 8.0, 1),    # the shared machine at load 8: one, never zero
    (16, 16, 5.2, 11),  # one fewer for each core other work keeps busy
    (4, 16, 0.0, 4),   # never more than torch would use
])
def test_threads_follow_the_cores_other_work_leaves_free(torch_threads, cores, others, expected):
    assert threads.threads_for(torch_threads, cores, others) == expected


def test_this_process_own_work_is_not_counted_as_other_work(monkeypatch):
    monkeypatch.setattr(threads, "_own", {"wall": None, "cpu": 0.0, "busy": 0.0})
    clock = {"wall": 1000.0, "cpu": 50.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(threads.time, "process_time", lambda: clock["cpu"])
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.0, 2.0, 2.0))
    assert threads.others_load() == 2.0  # the first look: nothing known of this process yet
    clock["wall"] += 600.0
    clock["cpu"] += 1200.0  # ten minutes at two cores: the whole load is this process's own
    assert threads.own_load() == pytest.approx(2.0, abs=1e-3)
    assert threads.others_load() == pytest.approx(0.0, abs=1e-3)
    clock["wall"] += 60.0  # a minute idle: its share decays as the load average does, by 1/e
    assert threads.own_load() == pytest.approx(2.0 / torch.e, rel=1e-3)


def test_a_run_without_threads_trains_on_one_thread_while_other_work_fills_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "others_load", lambda: 8.0)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    seen, before = [], torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        train(TINY, lambda event: seen.append(torch.get_num_threads()) and None)
        assert set(seen) == {1} and torch.get_num_threads() == 2  # restored afterwards
        monkeypatch.setattr(threads, "others_load", lambda: 0.0)
        seen.clear()
        train(TINY, lambda event: seen.append(torch.get_num_threads()) and None)
        assert set(seen) == {2}
        seen.clear()
        train(TINY.replace(threads=2), lambda event: seen.append(torch.get_num_threads()) and None)
        assert set(seen) == {2}  # a config's own threads are kept whatever the load
    finally:
        torch.set_num_threads(before)


def test_the_load_average_is_read_for_real():
    assert threads.others_load() >= 0.0 and 1 <= threads.cpu_threads(torch.get_num_threads())
    time.sleep(0.01)
    assert threads.own_load() >= 0.0
