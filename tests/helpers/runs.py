"""Runs made up for tests that need a stored run, without training one."""

import torch

from convcov_core.train import RunResult, TrainConfig


def fake_run(seed: int = 0, k: int = 5, acc: float = 90.0, init: str = "gaussian", variant=None) -> RunResult:
    """A finished run with two layers of covariances and a small state dict, no training needed."""
    g = torch.Generator().manual_seed(seed)
    covs = []
    for _ in range(2):
        w = torch.randn(16, k * k, generator=g, dtype=torch.float64)
        covs.append(torch.cov(w.T))
    history = {"step": [1, 2, 3, 4], "loss": [2.3, 2.0, float("nan"), 1.5], "lr": [0.01, 0.02, 0.01, 0.0],
               "epoch": [0.5, 1.0, 1.5, 2.0], "train_acc": [50.0, 70.0], "test_acc": [60.0, acc],
               "images_per_s": [1000.0, 1100.0], "epoch_end_step": [2, 4]}
    return RunResult(config=TrainConfig(init=init, seed=seed, kernel_size=k, model="convmixer-16/2"),
                     history=history, final={"test_acc": acc, "test_acc_raw": acc - 20, "train_acc": 70.0,
                                             "loss": 1.5},
                     status="ok", message="4 steps", wall_time=1.25, device="cpu",
                     layer_names=["blocks.0.0.fn.0", "blocks.1.0.fn.0"], covariances=covs,
                     state_dict={"head.weight": torch.randn(10, 16, generator=g),
                                 "head.bias": torch.zeros(10)}, variant=variant)
