"""The network a group of runs trains in train_group: the Network protocol (what the loop asks of
it), the Setup the group trains in, make_step, and OwnNetwork, one run's own network (a lone run is
a group of one). ensemble.GroupedNetwork is the other Network: several runs' networks stacked as one.

The loop addresses the runs by their place in the group (m = 0 .. n-1) and, in a step or an
evaluation, the runs still training in that order (a run that diverged has left the network).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from ..step import EagerStep, GraphStep, adamw, cross_entropy
from .config import TrainConfig
from .evaluation import evaluate_epoch
from .inputs import gather_images
from .model import prepare_model

Tensor = torch.Tensor
Step = EagerStep | GraphStep
Built = tuple[torch.nn.Module, Step, torch.dtype | None, bool]  # network, step, autocast dtype, channels_last


@dataclass
class Setup:
    """A group ready to train: the network and its training step on the device, the data there too
    (xs, ys: training images and labels; xt, yt: test), and the step plan (inputs.plan_steps)."""

    device: torch.device
    model: torch.nn.Module
    train_step: Step
    dtype: torch.dtype | None
    channels_last: bool
    xs: Tensor
    ys: Tensor
    xt: Tensor
    yt: Tensor
    batch: int
    per_epoch: int
    total: int


class Network(Protocol):
    """What train_group trains a group's runs through: one network holding every run's."""

    def build(self, config: TrainConfig, info, device: torch.device) -> Built:
        """(network, its training step (make_step), autocast dtype, channels_last): the runs' networks
        ready on the device for the group's shared settings `config` and info's images."""

    def inputs(self, setup: Setup, idx: Tensor) -> tuple[Tensor, Tensor]:
        """(images, labels) of one step: row j of idx (runs still training x batch) indexes the
        training images of the j-th run still training."""

    def evaluate(self, setup: Setup, keep: bool) -> tuple[list[float], list[float]]:
        """(raw, settled) test accuracy of each run still training (evaluation.raw_and_settled;
        keep: leave the recalibrated BatchNorm statistics in place)."""

    def member(self, m: int) -> torch.nn.Module:
        """Run m's own network, with the weights and statistics it has now (m still training)."""

    def drop(self, runs: list[int]) -> tuple[torch.nn.Module, Step] | None:
        """Go on without `runs` (they diverged): the network and step of the runs left, None when none is."""


def make_step(config: TrainConfig, model: torch.nn.Module, device: torch.device, dtype: torch.dtype | None,
              criterion=cross_entropy) -> Step:
    """AdamW over the model's trainable parameters and the step that runs it: captured as a CUDA graph
    on CUDA, through torch.compile when the config says so (evaluation stays eager); criterion: the
    step's loss (step.EagerStep)."""
    forward = torch.compile(model) if config.compile else model
    graphed = device.type == "cuda" and not config.compile  # compiled code is not captured again
    optimizer = adamw([p for p in model.parameters() if p.requires_grad], config.lr,
                      config.weight_decay, device, graphed=graphed)
    return (GraphStep if graphed else EagerStep)(forward, optimizer, device, config.label_smoothing, dtype, criterion)


class OwnNetwork:
    """The Network of a run trained alone: `model` as it is (moved to the device and trained in
    place), or build_model_for(config) when None."""

    def __init__(self, model: torch.nn.Module | None = None):
        self.model = model
        self.seed: int | None = None  # the run's, once built

    def build(self, config, info, device):
        self.model, dtype, channels_last = prepare_model(config, self.model, info, device)
        self.seed = config.seed
        return self.model, make_step(config, self.model, device, dtype), dtype, channels_last

    def inputs(self, setup, idx):
        return gather_images(setup.xs, idx[0], setup.channels_last), setup.ys.index_select(0, idx[0])

    def evaluate(self, setup, keep):
        raw, settled = evaluate_epoch(self.model, setup.xs, setup.xt, setup.yt, setup.batch, setup.channels_last,
                                      setup.dtype, seed=self.seed, keep=keep)
        return [raw], [settled]

    def member(self, m):
        return self.model

    def drop(self, runs):
        return None  # the run alone was the whole group
