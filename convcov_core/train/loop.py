"""The training loop: train_group() trains a group of runs together, one step of every run at a
time through one network that holds them all (network.Network), each run with its own data order,
history, events and divergence check; train() runs one config, a group of one, to a RunResult.
A progress callback may cancel. estimate_time() times a few steps to predict a whole run.

Speed: the data lives on the training device as one tensor, batches are drawn by a seeded permutation
instead of a DataLoader; the model and the data run channels_last where that pays (CPU; wide models
on CUDA); under bf16 autocast where the hardware has bf16 arithmetic (`precision="auto"`: CUDA and
CPUs with AMX or AVX512-BF16; step.py); on CPU, depthwise convs take their filter gradient from a
swapped convolution (depthwise.py: all of them under bf16, from 7 x 7 on in fp32); on CUDA with
fused AdamW, the whole step captured once as a CUDA graph and replayed (step.GraphStep). Per-step
losses stay on the device and are read back every step on CPU (free there) and every few steps on
accelerators. `compile=True` trains through torch.compile instead of the graph capture (evaluation
stays eager); its compile time is reported with the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Callable

import torch

from ..validation import whole_number
from .config import Callback, ProgressEvent, RunResult, TrainConfig, lr_at, resolve_device
from .inputs import _to_device, load_training_data, plan_steps
from .network import Network, OwnNetwork, Setup
from .run_state import RunState, finish_run
from .threads import cpu_threads

Tensor = torch.Tensor

_SYNC_EVERY_ACCELERATOR = 16  # steps between reading losses back from a GPU


def train(config: TrainConfig, callback: Callback | None = None, *, variant: str | None = None,
          run_index: int = 0, n_runs: int = 1, sync_every: int | None = None,
          model: torch.nn.Module | None = None) -> RunResult:
    """Train one model as `config` says; `callback(event)` returning True or "stop" cancels the run.

    A non-finite loss stops the run as "diverged" (history up to that step kept). Losses are read
    back from the device every `sync_every` steps (default: 1 on CPU, 16 on accelerators), so step
    events and the divergence check come in groups of that size. config.threads, when set, is the
    number of CPU threads torch uses during the run (restored afterwards). `model`: train this
    model from its weights as they are (moved to the device and trained in place) instead of
    build_model_for(config): models without depthwise filters to initialize, such as the Feature
    Ansatz's plain CNNs. The run is train_group's group of one.
    """
    return train_group([config], callback, network=OwnNetwork(model), variants=[variant], run_indices=[run_index],
                       n_runs=n_runs, sync_every=sync_every)[0]


def train_group(configs: list[TrainConfig], callback: Callback | None = None, *, network: Network | None = None,
                variants: list | None = None, run_indices: list[int] | None = None, n_runs: int | None = None,
                sync_every: int | None = None) -> list[RunResult]:
    """Train the configs' runs together through `network`, which holds them all (None: the one
    config's own network, OwnNetwork; several configs need one such as ensemble.GroupedNetwork), and
    return their RunResults in order, each as its run would end alone (see train): wall_time is the
    group's over its runs. The runs share configs[0]'s data, step plan, schedule, device, precision
    and threads. A run that diverges ends and the others go on without it (network.drop); a
    callback's stop cancels them all. variants / run_indices / n_runs label each run's events and
    result as train(variant=, run_index=, n_runs=) does (default: no variant, 0, 1, ... of
    len(configs)); the events also say how many runs train together and the run's place among them
    (ProgressEvent.together, .position)."""
    configs = [config.validate() for config in configs]
    n = len(configs)
    variants = [None] * n if variants is None else list(variants)
    run_indices = list(range(n)) if run_indices is None else list(run_indices)
    if not configs or len(variants) != n or len(run_indices) != n:
        raise ValueError("train_group needs at least one config, and one variant and run index per config")
    if network is None and n > 1:
        raise ValueError("several configs train together through a network that holds them all "
                         "(ensemble.GroupedNetwork)")
    labels = [dict(variant=v, run_index=i, n_runs=n if n_runs is None else n_runs)
              for v, i in zip(variants, run_indices)]
    with _cpu_threads(configs[0]):
        return _Group(configs, OwnNetwork() if network is None else network, callback, labels, sync_every).run()


@contextlib.contextmanager
def _cpu_threads(config: TrainConfig):
    """torch's threads set to config.threads while the group trains; when None, on a CPU, to as many as
    other work on the machine leaves free (threads.cpu_threads)."""
    previous = torch.get_num_threads()
    n = config.threads
    if n is None and resolve_device(config.device).type == "cpu":
        n = cpu_threads(previous)
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _sync_every(device: torch.device, sync_every: int | None) -> int:
    """Steps between reading losses back: sync_every, by default 1 on CPU and 16 on accelerators."""
    if sync_every is None:
        return 1 if device.type == "cpu" else _SYNC_EVERY_ACCELERATOR
    return whole_number(sync_every, "sync_every", 1)


def _set_up(config: TrainConfig, network: Network) -> Setup:
    """Device, data, network and training step of a group whose shared settings are config's."""
    device = resolve_device(config.device)
    train_x, train_y, test_x, test_y, info = load_training_data(config)
    if len(train_y) < 1 or len(test_y) < 1:
        raise ValueError(f"dataset {config.dataset!r} has no training or no test images")
    batch, per_epoch, total = plan_steps(config, len(train_y))
    model, train_step, dtype, channels_last = network.build(config, info, device)
    return Setup(device=device, model=model, train_step=train_step, dtype=dtype, channels_last=channels_last,
                 xs=_to_device(train_x, device, channels_last), ys=train_y.to(device),
                 xt=_to_device(test_x, device, channels_last), yt=test_y.to(device),
                 batch=batch, per_epoch=per_epoch, total=total)


class _Group:
    """A group's runs while they train: a RunState per run, and the network of the runs still
    training (alive, in the order of their place in it)."""

    def __init__(self, configs: list[TrainConfig], network: Network, callback: Callback | None,
                 labels: list[dict], sync_every: int | None):
        self.started = time.perf_counter()
        self.config, self.network = configs[0], network
        self.setup = _set_up(self.config, network)
        self.sync_every = _sync_every(self.setup.device, sync_every)
        self.runs = [RunState(c, self.setup, callback, together=len(configs), position=position, **label)
                     for position, (c, label) in enumerate(zip(configs, labels))]
        self.alive = list(range(len(configs)))
        self.step = 0
        self.n_epochs = math.ceil(self.setup.total / self.setup.per_epoch)
        self.results: dict[int, RunResult] = {}

    def run(self) -> list[RunResult]:
        for epoch in range(1, self.n_epochs + 1):
            self.run_epoch(epoch, last=epoch == self.n_epochs)
            if not self.alive:
                break
        self.finish(self.alive)
        return [self.results[m] for m in range(len(self.runs))]

    def run_epoch(self, epoch: int, last: bool) -> None:
        """Train epoch `epoch` (1-based) for every run still training and evaluate them, keeping the
        recalibrated BatchNorm statistics after the `last` one."""
        for m in self.alive:
            self.runs[m].epoch = epoch
        epoch_started = time.perf_counter()
        steps_here = min(self.setup.per_epoch, self.setup.total - self.step)
        orders = torch.stack([self.runs[m].epoch_order(steps_here) for m in self.alive])
        correct = self.train_steps(steps_here, orders)
        if not self.alive:
            return
        train_seconds = time.perf_counter() - epoch_started
        raw, settled = self.network.evaluate(self.setup, keep=last)
        for j, m in enumerate(self.alive):
            self.runs[m].end_epoch(steps_here, correct[m], train_seconds, raw[j], settled[j])
        if any(self.runs[m].status == "cancelled" for m in self.alive):
            self.cancel(f"cancelled after epoch {epoch} (step {self.step} of {self.setup.total})")

    def train_steps(self, steps_here: int, orders: Tensor) -> dict[int, int]:
        """The epoch's steps on each run's batches (orders: one row of image indices per run alive),
        read back every sync_every steps and at the epoch's end; correct predictions per run."""
        config, batch = self.config, self.setup.batch
        correct = dict.fromkeys(self.alive, 0)
        pending, lrs = [], []
        for i in range(steps_here):
            setup = self.setup  # a smaller network's after a run diverged
            lr = lr_at(self.step, setup.total, config.lr, config.schedule)
            x, y = self.network.inputs(setup, orders[:, i * batch:(i + 1) * batch])
            pending.append(setup.train_step(x, y, lr))
            lrs.append(lr)
            self.step += 1
            if config.compile and self.step == 1:
                for m in self.alive:  # compilation + the first step
                    self.runs[m].compile_seconds = time.perf_counter() - self.runs[m].loop_started
            if len(pending) < self.sync_every and i < steps_here - 1:
                continue
            keep = self.read_back(pending, lrs, correct)
            pending = []
            if not self.alive:
                break
            orders = orders[keep]
        return correct

    def read_back(self, pending: list, lrs: list[float], correct: dict[int, int]) -> list[int]:
        """Hand each run its losses of the pending steps (its RunState records them and sends its step
        events), add up its correct predictions, and end the runs that diverged (or all, on a cancel);
        the rows of the runs that go on."""
        # a lone network's step gives a 0-d loss and count, a grouped one's one per run
        losses = torch.stack([loss.reshape(-1) for loss, _ in pending], dim=1).tolist()
        counts = torch.stack([n.reshape(-1) for _, n in pending]).sum(0).tolist()
        for j, m in enumerate(self.alive):
            self.runs[m].step = self.step
            self.runs[m].read_back(losses[j], lrs)
            correct[m] += counts[j]
        if any(self.runs[m].status == "cancelled" for m in self.alive):
            self.cancel(f"cancelled at step {self.step} of {self.setup.total}")
            return []
        diverged = [m for m in self.alive if self.runs[m].status == "diverged"]
        survivors = [m for m in self.alive if m not in diverged]
        keep = [self.alive.index(m) for m in survivors]
        if diverged:
            self.finish(diverged)
            smaller = self.network.drop(diverged)
            if smaller is not None:
                self.setup = dataclasses.replace(self.setup, model=smaller[0], train_step=smaller[1])
        self.alive = survivors
        return keep

    def cancel(self, message: str) -> None:
        """End every run still training as cancelled (the one whose callback asked keeps its message)."""
        for m in self.alive:
            if self.runs[m].status == "ok":
                self.runs[m].status, self.runs[m].message = "cancelled", message
        self.finish(self.alive)
        self.alive = []

    def finish(self, runs: list[int]) -> None:
        """The RunResults of `runs` (still in the network), from each one's own network."""
        for m in runs:
            self.results[m] = finish_run(self.runs[m], self.network.member(m), self.n_epochs, self.started)
            self.results[m].wall_time /= len(self.runs)


def estimate_time(config: TrainConfig, n_steps: int = 3) -> float:
    """Seconds the whole run should take: time n_steps measured steps (after one warm-up step) and one
    pass over the test set, then scale to the run's step and epoch counts (timed_estimate)."""
    config.validate()
    whole_number(n_steps, "n_steps", 1)
    return timed_estimate(config, lambda clock: train(estimate_probe(config, n_steps), clock, sync_every=1))


def estimate_probe(config: TrainConfig, n_steps: int) -> TrainConfig:
    """The short run that estimate_time times: n_steps + 1 steps of one epoch, no weights kept."""
    return config.replace(max_steps=n_steps + 1, epochs=1, keep_state_dict=False)


def timed_estimate(config: TrainConfig, run_probe: Callable[[Callback], object]) -> float:
    """Seconds a run of `config` should take, from run_probe(callback) training its probe
    (estimate_probe): run 0's steps after the first, and the evaluation after them, scaled to the
    config's step and epoch counts."""
    _, train_y, *_ = load_training_data(config)
    _, per_epoch, total = plan_steps(config, len(train_y))
    stamps = []

    def clock(event: ProgressEvent):
        if event.run_index == 0:
            stamps.append((event.kind, time.perf_counter()))

    run_probe(clock)
    steps = [t for kind, t in stamps if kind == "step"]
    step_seconds = (steps[-1] - steps[0]) / max(len(steps) - 1, 1)
    eval_seconds = next(t for kind, t in stamps if kind == "epoch") - steps[-1]
    return step_seconds * total + eval_seconds * math.ceil(total / per_epoch)
