"""train_ensemble: trials in compatible groups (plan.py), each group trained as one grouped network
(grouping.py) by train's own loop pieces, and one RunResult per trial as train() would return it.

A group's step: member m's batch is the next B images of its own seeded permutation
(_Loop.epoch_order, drawn as its lone run draws them); all members' batches go through the grouped
network at once and the objective is the sum of the members' mean cross-entropies,
    L = sum_m (1 / B) sum_b CE(f_m(x_mb), y_mb),    dL / dtheta_m = d CE_m / dtheta_m,
so each member gets the gradient it would get alone, and AdamW, elementwise, moves it as alone.
Frozen filters: a grouped depthwise weight holds every member's filters, so the frozen members' rows
are copied back after each optimizer step (its gradient and its weight decay would move them); when
every member is frozen the weight takes no gradient, as in train(). Each member keeps its own
_Loop: history, step and epoch events (variant, seed, run_index as separate runs), its own
divergence check. A member whose loss stops being finite ends "diverged" and the group goes on
without it (a smaller grouped network, AdamW's moments carried over); a callback's stop cancels the
whole group and the groups after it. On the CPU a group's large activations stay in the heap
(heap.keep_large_blocks). Evaluation: test images to every member at once, BatchNorm
statistics recalibrated on each member's own seeded training batches (train.evaluation).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import torch
import torch.nn.functional as F

from .. import batchnorm, init
from ..train.config import Callback, RunResult, TrainConfig, lr_at, new_history, resolve_device
from ..train.evaluation import count_correct, raw_and_settled, test_batch_size
from ..train.inputs import load_training_data
from ..train.loop import (
    _cpu_threads,
    _finish,
    _Loop,
    _set_up,
    _sync_every,
    _train_step,
    estimate_probe,
    timed_estimate,
    train,
)
from ..train.model import _prepare_model, build_model_for
from .grouping import Ensemble, grouping_problem, member_images, select_rows
from .heap import keep_large_blocks
from .plan import ensemble_key, group_compatible, max_members, split_evenly

Tensor = torch.Tensor


def member_losses(out: Tensor, y: Tensor, label_smoothing: float) -> tuple[Tensor, Tensor, Tensor]:
    """(objective, losses, correct) of a group's batch, scores B x N x K and labels B x N: the sum
    over members of their mean cross-entropy, and each member's loss and number correct."""
    losses = F.cross_entropy(out.transpose(1, 2), y, reduction="none", label_smoothing=label_smoothing).mean(0)
    return losses.sum(), losses.detach(), (out.detach().argmax(-1) == y).sum(0)


def train_ensemble(configs: list[TrainConfig], callback: Callback | None = None, *, models: list | None = None,
                   variants: list | None = None, run_indices: list[int] | None = None, n_runs: int | None = None,
                   memory_budget: int | None = None, sync_every: int | None = None,
                   on_result: Callable[[RunResult], None] | None = None) -> list[RunResult]:
    """Train every config, compatible ones together (plan.group_compatible), and return their
    RunResults in the order of configs, each as train(config) returns it: wall_time is the member's
    share of its group's (the group's wall time over its members). A config trained alone goes
    through train(). variants / run_indices / n_runs label each config's events and result as
    train(variant=, run_index=, n_runs=) does (default: no variant, 0, 1, ... of len(configs)); a
    group's events also say how many runs train together and the run's place among them
    (ProgressEvent.together, .position: exact for groups of consecutive run indices, as compare's are).
    models: train these networks from their weights as they are (one per config, one architecture,
    trained in place), as train(model=) does. memory_budget: bytes a group may use (default:
    plan.MEMORY_SHARE of the memory available). After a cancel the configs not started yet come back
    "cancelled" with nothing trained. on_result(result): the result of each config that trained, as
    soon as its group (or its lone run) ends, before the next group starts (a cancelled one too)."""
    configs = [config.validate() for config in configs]
    n = len(configs)
    variants = [None] * n if variants is None else list(variants)
    run_indices = list(range(n)) if run_indices is None else list(run_indices)
    if not configs or len(variants) != n or len(run_indices) != n or (models is not None and len(models) != n):
        raise ValueError("train_ensemble needs at least one config, and one variant, run index and model "
                         "(when given) per config")
    n_runs = n if n_runs is None else n_runs
    labels = [dict(variant=v, run_index=i, n_runs=n_runs) for v, i in zip(variants, run_indices)]
    results: list[RunResult | None] = [None] * n
    for group in _groups(configs, models, memory_budget):
        if any(r is not None and r.status == "cancelled" for r in results):
            for i in group:
                results[i] = _not_started(configs[i], variants[i])
            continue
        members = None if models is None else [models[i] for i in group]
        if len(group) == 1:
            i = group[0]
            model = None if models is None else models[i]
            results[i] = train(configs[i], callback, sync_every=sync_every, model=model, **labels[i])
            _report(on_result, [results[i]])
            continue
        on_cpu = resolve_device(configs[group[0]].device).type == "cpu"
        with _cpu_threads(configs[group[0]].threads), keep_large_blocks(on_cpu):
            group_results = _Group([configs[i] for i in group], members, callback, [labels[i] for i in group],
                                   sync_every).run()
        for i, result in zip(group, group_results):
            results[i] = result
        _report(on_result, group_results)
    return results


def _report(on_result, results: list) -> None:
    for result in results if on_result is not None else ():
        on_result(result)


def estimate_time(configs: list[TrainConfig], n_steps: int = 3) -> float:
    """Seconds train_ensemble(configs) should take: the probes (train.estimate_probe: n_steps timed
    steps after a warm-up, one evaluation) of its first group trained together and scaled as
    train.estimate_time scales one run's, times the number of groups."""
    configs = [config.validate() for config in configs]
    groups = group_compatible(configs)
    first = [estimate_probe(configs[i], n_steps) for i in groups[0]]
    return len(groups) * timed_estimate(configs[groups[0][0]],
                                        lambda clock: train_ensemble(first, clock, sync_every=1))


def _groups(configs: list[TrainConfig], models: list | None, memory_budget: int | None) -> list[list[int]]:
    """group_compatible's groups, or for given models one group (split to fit in memory) when the
    configs share their settings and grouping supports the models, else each alone."""
    if models is None:
        return group_compatible(configs, memory_budget=memory_budget)
    if len({ensemble_key(c) for c in configs}) != 1:
        raise ValueError("configs trained with given models must share every setting but "
                         "seed, init, sigmas, covariances, freeze_filters and keep_state_dict")
    info = load_training_data(configs[0])[4]
    if grouping_problem(models[0], info.in_chans, info.image_size) is not None:
        return [[i] for i in range(len(configs))]
    return split_evenly(list(range(len(configs))), max_members(configs[0], models[0], memory_budget))


def _not_started(config: TrainConfig, variant: str | None) -> RunResult:
    final = {"test_acc": None, "test_acc_raw": None, "train_acc": None, "loss": None}
    return RunResult(config=config, history=new_history(), final=final, status="cancelled",
                     message="cancelled before it started", wall_time=0.0,
                     device=str(resolve_device(config.device)), variant=variant)


class _Group:
    """Compatible members trained as one: a _Loop per member (history, events, status) and one grouped
    network of the members still training (alive, in the order of its rows)."""

    def __init__(self, configs: list[TrainConfig], models: list | None, callback: Callback | None,
                 labels: list[dict], sync_every: int | None):
        self.started = time.perf_counter()
        self.config = configs[0]
        self.info = load_training_data(self.config)[4]
        self.templates = models or [build_model_for(c, self.info) for c in configs]
        self.alive = list(range(len(configs)))
        self.configs = configs
        self.setup = _set_up(self.config, self.templates, prepare=self._prepare, criterion=member_losses)
        self.sync_every = _sync_every(self.setup.device, sync_every)
        self.loops = [_Loop(c, dataclasses.replace(self.setup, model=m, train_step=None), callback,
                            sync_every=self.sync_every, **label)
                      for c, m, label in zip(configs, self.templates, labels)]
        for position, loop in enumerate(self.loops):
            loop.together, loop.position = len(self.loops), position
        self._keep_frozen_filters()
        self.step = 0
        self.n_epochs = math.ceil(self.setup.total / self.setup.per_epoch)
        self.results: dict[int, RunResult] = {}

    def _prepare(self, config: TrainConfig, members: list, info, device: torch.device):
        """(grouped network of `members` on the device, autocast dtype, channels_last), made ready by
        train's _prepare_model; its depthwise filters frozen when every member's are."""
        ensemble = members if isinstance(members, Ensemble) else Ensemble.of(members)
        grouped_info = dataclasses.replace(info, in_chans=ensemble.n * info.in_chans)
        prepared = _prepare_model(config.replace(freeze_filters=False), ensemble, grouped_info, device)
        if all(self.configs[m].freeze_filters for m in self.alive):
            for conv in self._depthwise_convs(ensemble):
                conv.weight.requires_grad_(False)
        return prepared

    def _depthwise_convs(self, ensemble: Ensemble) -> list:
        """The grouped network's convs that are its members' depthwise convs, found by the members'
        names (a grouped stem of one-channel images has groups == in_channels too)."""
        return [ensemble.net.get_submodule(name) for name, _ in init.depthwise_convs(self.templates[0])]

    def _keep_frozen_filters(self) -> None:
        """Copy the frozen members' depthwise filters back after every optimizer step, when some
        members train theirs (with all frozen the weights take no gradient: _prepare)."""
        n = len(self.alive)
        frozen = [j for j, m in enumerate(self.alive) if self.configs[m].freeze_filters]
        if not frozen or len(frozen) == n:
            return
        kept = []
        for conv in self._depthwise_convs(self.setup.model):
            rows = select_rows(torch.arange(len(conv.weight), device=conv.weight.device), frozen, n)
            kept.append((conv.weight, rows, conv.weight.detach()[rows].clone()))

        @torch.no_grad()
        def put_back(optimizer, args, kwargs):
            for weight, rows, values in kept:
                weight.index_copy_(0, rows, values)

        self.setup.train_step.optimizer.register_step_post_hook(put_back)

    def run(self) -> list[RunResult]:
        for epoch in range(1, self.n_epochs + 1):
            self.run_epoch(epoch, last=epoch == self.n_epochs)
            if not self.alive:
                break
        self._finish(self.alive)
        return [self.results[m] for m in range(len(self.loops))]

    def run_epoch(self, epoch: int, last: bool) -> None:
        """Train epoch `epoch` (1-based) for every member still training and evaluate them, as
        _Loop.run_epoch does for one run."""
        for m in self.alive:
            self.loops[m].epoch = epoch
        epoch_started = time.perf_counter()
        steps_here = min(self.setup.per_epoch, self.setup.total - self.step)
        orders = torch.stack([self.loops[m].epoch_order(steps_here) for m in self.alive])
        correct = self._train_steps(steps_here, orders)
        if not self.alive:
            return
        train_seconds = time.perf_counter() - epoch_started
        setup = self.setup  # a smaller group's when a member diverged
        raw, settled = raw_and_settled(setup.model, self._test_accuracies, self._recalibration_batches(),
                                       setup.dtype, keep=last)
        for j, m in enumerate(self.alive):
            self.loops[m].end_epoch(steps_here, correct[m], train_seconds, raw[j], settled[j])
        if any(self.loops[m].status == "cancelled" for m in self.alive):
            self._cancel(f"cancelled after epoch {epoch} (step {self.step} of {setup.total})")

    def _train_steps(self, steps_here: int, orders: Tensor) -> dict[int, int]:
        """The epoch's steps on each member's batches (orders: one row of image indices per member
        alive), read back every sync_every steps and at the epoch's end; correct predictions per member."""
        config, batch = self.config, self.setup.batch
        correct = dict.fromkeys(self.alive, 0)
        pending, lrs = [], []
        for i in range(steps_here):
            setup = self.setup  # a smaller group's after a member diverged
            lr = lr_at(self.step, setup.total, config.lr, config.schedule)
            idx = orders[:, i * batch:(i + 1) * batch]
            pending.append(setup.train_step(member_images(setup.xs, idx, setup.channels_last), setup.ys[idx].T, lr))
            lrs.append(lr)
            self.step += 1
            if config.compile and self.step == 1:
                for m in self.alive:  # compilation + the first step
                    self.loops[m].compile_seconds = time.perf_counter() - self.loops[m].loop_started
            if len(pending) < self.sync_every and i < steps_here - 1:
                continue
            keep = self._read_back(pending, lrs, correct)
            pending = []
            if not self.alive:
                break
            orders = orders[keep]
        return correct

    def _read_back(self, pending: list, lrs: list[float], correct: dict[int, int]) -> list[int]:
        """Hand each member its losses of the pending steps (its _Loop records them and sends its step
        events), add up its correct predictions, and end the members that diverged (or all, on a
        cancel); the rows of the members that go on."""
        losses = torch.stack([loss for loss, _ in pending], dim=1).tolist()
        counts = torch.stack([n for _, n in pending]).sum(0).tolist()
        for j, m in enumerate(self.alive):
            self.loops[m].step = self.step
            self.loops[m].read_back(losses[j], lrs)
            correct[m] += counts[j]
        if any(self.loops[m].status == "cancelled" for m in self.alive):
            self._cancel(f"cancelled at step {self.step} of {self.setup.total}")
            return []
        diverged = [m for m in self.alive if self.loops[m].status == "diverged"]
        self._finish(diverged)
        survivors = [m for m in self.alive if m not in diverged]
        keep = [self.alive.index(m) for m in survivors]
        if diverged and survivors:
            self._regroup(keep)
        self.alive = survivors
        return keep

    def _cancel(self, message: str) -> None:
        """End every member still training as cancelled (the one whose callback asked keeps its message)."""
        for m in self.alive:
            if self.loops[m].status == "ok":
                self.loops[m].status, self.loops[m].message = "cancelled", message
        self._finish(self.alive)
        self.alive = []

    def _finish(self, members: list[int]) -> None:
        """The RunResults of `members` (still in the grouped network): each one's weights and
        statistics copied into its own network, then train's _finish."""
        for m in members:
            loop = self.loops[m]
            loop.setup.model.load_state_dict(self.setup.model.member_state(self.alive.index(m)))
            self.results[m] = _finish(loop, self.n_epochs, self.started)
            self.results[m].wall_time /= len(self.loops)

    def _regroup(self, keep: list[int]) -> None:
        """Go on with the members at rows `keep` only: a smaller grouped network with their weights,
        statistics and AdamW moments, and its own step."""
        old_net, old_step, n = self.setup.model, self.setup.train_step, len(self.alive)
        ensemble = Ensemble(self.templates[self.alive[keep[0]]], len(keep))
        ensemble.net.load_state_dict({k: select_rows(v, keep, n) for k, v in old_net.net.state_dict().items()})
        self.alive = [self.alive[j] for j in keep]
        net, dtype, _ = self._prepare(self.config, ensemble, self.info, self.setup.device)
        train_step = _train_step(self.config, net, self.setup.device, dtype, member_losses)
        old_params = dict(old_net.named_parameters())
        for name, p in net.named_parameters():
            state = old_step.optimizer.state.get(old_params[name])
            if p.requires_grad and state:
                train_step.optimizer.state[p] = {k: select_rows(v, keep, n) for k, v in state.items()}
        self.setup = dataclasses.replace(self.setup, model=net, train_step=train_step)
        self._keep_frozen_filters()

    def _test_accuracies(self) -> list[float]:
        """Test accuracy in percent of every member alive: the test images go to all of them at once."""
        setup, n = self.setup, len(self.alive)
        size, total = test_batch_size(setup.batch), len(setup.yt)
        batches = ((member_images(setup.xt, torch.arange(s, min(s + size, total), device=setup.device).expand(n, -1),
                                  setup.channels_last), setup.yt[s:s + size, None].expand(-1, n))
                   for s in range(0, total, size))
        counts = count_correct(setup.model, batches, setup.device, setup.dtype)
        return [100.0 * c / max(total, 1) for c in counts.tolist()]

    def _recalibration_batches(self):
        """Each member's batchnorm.training_batches (its own seed), side by side in one grouped batch."""
        setup = self.setup
        orders = [batchnorm.training_batches(setup.xs, setup.batch, seed=self.configs[m].seed,
                                             as_batch=lambda images, idx: idx) for m in self.alive]
        for idx in zip(*orders):
            yield member_images(setup.xs, torch.stack(idx), setup.channels_last)
