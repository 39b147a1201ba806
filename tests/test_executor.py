"""The sweep executors follow one protocol (sweep.Executor), RayExecutor's checked without starting
Ray; describe() says how trials train on this machine, as trial_batches hands them out."""

import inspect

import pytest

from convcov_core.sweep import Executor, LocalPool, RayExecutor, Sweep, worker
from convcov_core.sweep.worker import trial_batches
from convcov_core.train import TrainConfig


class _Ray:
    """What RayExecutor.describe asks the ray module: its nodes (one, alive)."""

    @staticmethod
    def nodes():
        return [{"Alive": True}]


def _unconnected_ray_executor(ensemble=None) -> RayExecutor:
    """A RayExecutor with a 4-CPU cluster's resources, made without its __init__ (which connects)."""
    executor = object.__new__(RayExecutor)
    executor.address, executor.cpus_per_trial, executor.gpus_per_trial = None, 2, 0
    executor.ensemble, executor.ray, executor.resources = ensemble, _Ray(), {"CPU": 4.0}
    return executor


def _members(protocol) -> list[str]:
    return sorted({*protocol.__annotations__, *(name for name in vars(protocol) if not name.startswith("_"))})


@pytest.mark.parametrize("make", [lambda: LocalPool(2), _unconnected_ray_executor], ids=["local", "ray"])
def test_both_executors_are_executors_with_the_protocols_signatures(make):
    executor = make()
    assert isinstance(executor, Executor)
    assert isinstance(executor.name, str) and executor.slots == 2 and executor.threads >= 1
    for name in _members(Executor):
        expected = getattr(Executor, name, None)
        if inspect.isfunction(expected):
            assert inspect.signature(getattr(type(executor), name)).parameters.keys() == \
                inspect.signature(expected).parameters.keys(), name


def test_describe_says_whether_trials_train_together_as_trial_batches_does_here():
    trials = Sweep("s", TrainConfig(model="convmixer-8/1", kernel_size=3), {}, ["default", "gaussian"], [0, 1]).trials()
    together = len(trial_batches(trials, 1, None)) < len(trials)
    for executor in (LocalPool(1), _unconnected_ray_executor()):
        text = executor.describe()
        assert ("compatible trials trained together" in text) == together, text
        assert ("each trial trained alone" in text) != together, text


@pytest.mark.parametrize("accelerator, says", [(False, "each trial trained alone (the default on the CPU"),
                                               (True, "compatible trials trained together (the default on an")])
def test_the_default_is_named_for_this_machine(monkeypatch, accelerator, says):
    monkeypatch.setattr(worker, "pays_off", lambda config: accelerator)
    assert says in LocalPool(1).describe() and says in _unconnected_ray_executor().describe()
    assert "each trial trained alone" in LocalPool(1, ensemble=False).describe()
    assert "compatible trials trained together" in _unconnected_ray_executor(ensemble=True).describe()
