"""Ensemble test setups: a tiny config, the tolerances a member keeps to its lone run, and checks."""

import pytest
import torch

from convcov_core.train import TrainConfig

# noisy-bars, 96 training images in batches of 32: 3 steps per epoch, 2 epochs (a fresh permutation
# and an evaluation with BatchNorm statistics put back between them)
BARS = dict(dataset="noisy-bars", dataset_params={"n_train": 96, "n_test": 64}, model="convmixer-16/2",
            kernel_size=5, patch_size=4, epochs=2, batch_size=32, device="cpu", precision="fp32",
            keep_state_dict=True)
LOSS_TOL = 1e-5  # measured: at most 2.4e-7 between a member's losses and its lone run's
STATE_TOL = 1e-4
ONE_IMAGE = 100 / 64 + 1e-9  # accuracy in percent of one of the 64 test images


def bars(**overrides) -> TrainConfig:
    return TrainConfig(**{**BARS, **overrides})


MIXED = [bars(seed=0), bars(seed=1, init="gaussian", freeze_filters=True), bars(seed=2, init="gaussian")]


def assert_same_run(member, alone):
    """A member's RunResult against its lone run's."""
    assert member.status == alone.status and member.message == alone.message
    assert member.history["step"] == alone.history["step"]
    assert member.history["loss"] == pytest.approx(alone.history["loss"], abs=LOSS_TOL, nan_ok=True)
    assert member.history["lr"] == alone.history["lr"]
    assert member.history["epoch_end_step"] == alone.history["epoch_end_step"]
    for key in ("test_acc", "test_acc_raw", "train_acc"):
        assert member.history[key] == pytest.approx(alone.history[key], abs=ONE_IMAGE), key
    assert member.layer_names == alone.layer_names
    for a, b in zip(member.covariances, alone.covariances, strict=True):
        assert torch.allclose(a, b, atol=STATE_TOL, equal_nan=True)
    assert member.state_dict.keys() == alone.state_dict.keys()
    for key, value in alone.state_dict.items():
        assert torch.allclose(member.state_dict[key].float(), value.float(), atol=STATE_TOL, equal_nan=True), key


def events_by_run(events):
    """(kind, step, epoch, seed, variant, n_runs) of every event, per run_index."""
    runs = {}
    for e in events:
        runs.setdefault(e.run_index, []).append((e.kind, e.step, e.epoch, e.seed, e.variant, e.n_runs))
    return runs
