"""GroupedNetwork: the train.Network of compatible runs trained together, their networks stacked as
one grouped network (grouping.Ensemble) that train.train_group trains.

A group's step: member m's batch is the next B images of its own seeded permutation (drawn as its
lone run draws them); all members' batches go through the grouped network at once and the
objective is the sum of the members' mean cross-entropies (member_losses),
    L = sum_m (1 / B) sum_b CE(f_m(x_mb), y_mb),    dL / dtheta_m = d CE_m / dtheta_m,
so each member gets the gradient it would get alone, and AdamW, elementwise, moves it as alone.
Frozen filters: a grouped depthwise weight holds every member's filters, so the frozen members' rows
are copied back after each optimizer step (its gradient and its weight decay would move them); when
every member is frozen the weight takes no gradient, as in train(). A member that diverges leaves:
the others go on in a smaller grouped network, AdamW's moments carried over (drop). Evaluation:
test images to every member at once, BatchNorm statistics recalibrated on each member's own seeded
training batches (train.evaluation).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from .. import batchnorm, init
from ..train import TrainConfig, build_model_for
from ..train.evaluation import count_correct, raw_and_settled, test_batch_size
from ..train.model import prepare_model
from ..train.network import Setup, make_step
from .grouping import Ensemble, member_images, select_rows

Tensor = torch.Tensor


def member_losses(out: Tensor, y: Tensor, label_smoothing: float) -> tuple[Tensor, Tensor, Tensor]:
    """(objective, losses, correct) of a group's batch, scores B x N x K and labels B x N: the sum
    over members of their mean cross-entropy, and each member's loss and number correct."""
    losses = F.cross_entropy(out.transpose(1, 2), y, reduction="none", label_smoothing=label_smoothing).mean(0)
    return losses.sum(), losses.detach(), (out.detach().argmax(-1) == y).sum(0)


class GroupedNetwork:
    """The members (configs sharing ensemble_key; `models`: their networks as they are, trained in
    place, else build_model_for each config) as one grouped network of those still training (alive)."""

    def __init__(self, configs: list[TrainConfig], models: list | None = None):
        self.configs, self.templates = configs, models
        self.alive = list(range(len(configs)))

    def build(self, config, info, device):
        self.config, self.info, self.device = config, info, device
        self.templates = self.templates or [build_model_for(c, info) for c in self.configs]
        return self._ready(Ensemble.of(self.templates))

    def _ready(self, ensemble: Ensemble):
        """(network, step, dtype, channels_last) of `ensemble` (the members alive): made ready by
        train's prepare_model, its depthwise filters frozen when every member's are, kept in place
        after each step for the frozen members when only some are."""
        grouped_info = dataclasses.replace(self.info, in_chans=ensemble.n * self.info.in_chans)
        self.net, dtype, channels_last = prepare_model(self.config.replace(freeze_filters=False), ensemble,
                                                       grouped_info, self.device)
        if all(self.configs[m].freeze_filters for m in self.alive):
            for conv in self._depthwise_convs(ensemble):
                conv.weight.requires_grad_(False)
        self.train_step = make_step(self.config, self.net, self.device, dtype, member_losses)
        self._keep_frozen_filters()
        return self.net, self.train_step, dtype, channels_last

    def _depthwise_convs(self, ensemble: Ensemble) -> list:
        """The grouped network's convs that are its members' depthwise convs, found by the members'
        names (a grouped stem of one-channel images has groups == in_channels too)."""
        return [ensemble.net.get_submodule(name) for name, _ in init.depthwise_convs(self.templates[0])]

    def _keep_frozen_filters(self) -> None:
        """Copy the frozen members' depthwise filters back after every optimizer step, when some
        members train theirs (with all frozen the weights take no gradient: _ready)."""
        n = len(self.alive)
        frozen = [j for j, m in enumerate(self.alive) if self.configs[m].freeze_filters]
        if not frozen or len(frozen) == n:
            return
        kept = []
        for conv in self._depthwise_convs(self.net):
            rows = select_rows(torch.arange(len(conv.weight), device=conv.weight.device), frozen, n)
            kept.append((conv.weight, rows, conv.weight.detach()[rows].clone()))

        @torch.no_grad()
        def put_back(optimizer, args, kwargs):
            for weight, rows, values in kept:
                weight.index_copy_(0, rows, values)

        self.train_step.optimizer.register_step_post_hook(put_back)

    def inputs(self, setup: Setup, idx: Tensor) -> tuple[Tensor, Tensor]:
        return member_images(setup.xs, idx, setup.channels_last), setup.ys[idx].T

    def evaluate(self, setup: Setup, keep: bool) -> tuple[list[float], list[float]]:
        return raw_and_settled(setup.model, lambda: self._test_accuracies(setup), self._recalibration_batches(setup),
                               setup.dtype, keep=keep)

    def _test_accuracies(self, setup: Setup) -> list[float]:
        """Test accuracy in percent of every member alive: the test images go to all of them at once."""
        n = len(self.alive)
        size, total = test_batch_size(setup.batch), len(setup.yt)
        batches = ((member_images(setup.xt, torch.arange(s, min(s + size, total), device=setup.device).expand(n, -1),
                                  setup.channels_last), setup.yt[s:s + size, None].expand(-1, n))
                   for s in range(0, total, size))
        counts = count_correct(setup.model, batches, setup.device, setup.dtype)
        return [100.0 * c / max(total, 1) for c in counts.tolist()]

    def _recalibration_batches(self, setup: Setup):
        """Each member's batchnorm.training_batches (its own seed), side by side in one grouped batch."""
        orders = [batchnorm.training_batches(setup.xs, setup.batch, seed=self.configs[m].seed,
                                             as_batch=lambda images, idx: idx) for m in self.alive]
        for idx in zip(*orders):
            yield member_images(setup.xs, torch.stack(idx), setup.channels_last)

    def member(self, m: int) -> torch.nn.Module:
        """Member m's own network (its template) with its weights and statistics from the grouped one."""
        template = self.templates[m]
        template.load_state_dict(self.net.member_state(self.alive.index(m)))
        return template

    def drop(self, runs: list[int]):
        """Go on with the other members only: a smaller grouped network with their weights, statistics
        and AdamW moments, and its own step; None when no member is left."""
        n = len(self.alive)
        keep = [j for j, m in enumerate(self.alive) if m not in runs]
        if not keep:
            return None
        old_net, old_step = self.net, self.train_step
        ensemble = Ensemble(self.templates[self.alive[keep[0]]], len(keep))
        ensemble.net.load_state_dict({k: select_rows(v, keep, n) for k, v in old_net.net.state_dict().items()})
        self.alive = [self.alive[j] for j in keep]
        net, train_step, _, _ = self._ready(ensemble)
        old_params = dict(old_net.named_parameters())
        for name, p in net.named_parameters():
            state = old_step.optimizer.state.get(old_params[name])
            if p.requires_grad and state:
                train_step.optimizer.state[p] = {k: select_rows(v, keep, n) for k, v in state.items()}
        return net, train_step
