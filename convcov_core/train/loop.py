"""The training loop: train() runs one config to a RunResult, with a progress callback that may
cancel; estimate_time() times a few of its steps to predict a whole run.

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
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..step import EagerStep, GraphStep, adamw, cross_entropy
from ..validation import whole_number
from .config import (
    Callback,
    ProgressEvent,
    RunResult,
    TrainConfig,
    lr_at,
    new_history,
    resolve_device,
    wants_stop,
)
from .evaluation import evaluate_epoch
from .inputs import _batch, _to_device, load_training_data, plan_steps
from .model import _final_covariances, _prepare_model

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
    Ansatz's plain CNNs.
    """
    config.validate()
    with _cpu_threads(config.threads):
        return _train(config, callback, variant, run_index, n_runs, sync_every, model)


@contextlib.contextmanager
def _cpu_threads(n: int | None):
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train(config: TrainConfig, callback, variant, run_index, n_runs, sync_every, model) -> RunResult:
    started = time.perf_counter()
    setup = _set_up(config, model)
    loop = _Loop(config, setup, callback, variant, run_index, n_runs, _sync_every(setup.device, sync_every))
    n_epochs = math.ceil(setup.total / setup.per_epoch)
    for epoch in range(1, n_epochs + 1):
        loop.run_epoch(epoch, last=epoch == n_epochs)
        if loop.status != "ok":
            break
    return _finish(loop, n_epochs, started)


def _sync_every(device: torch.device, sync_every: int | None) -> int:
    """Steps between reading losses back: sync_every, by default 1 on CPU and 16 on accelerators."""
    if sync_every is None:
        return 1 if device.type == "cpu" else _SYNC_EVERY_ACCELERATOR
    return whole_number(sync_every, "sync_every", 1)


@dataclass
class _Setup:
    """A run ready to start: the model and its training step on the device, the data there too
    (xs, ys: training images and labels; xt, yt: test), and the step plan (plan_steps)."""

    device: torch.device
    model: torch.nn.Module
    train_step: EagerStep | GraphStep
    dtype: torch.dtype | None
    channels_last: bool
    xs: Tensor
    ys: Tensor
    xt: Tensor
    yt: Tensor
    batch: int
    per_epoch: int
    total: int


def _set_up(config: TrainConfig, model, *, prepare=_prepare_model, criterion=cross_entropy) -> _Setup:
    """Device, data, model, optimizer and step function of a run: prepare(config, model, info, device)
    -> (model on the device, autocast dtype, channels_last), by default `model` or one built from the
    config (model._prepare_model); criterion: the step's loss (step.EagerStep)."""
    device = resolve_device(config.device)
    train_x, train_y, test_x, test_y, info = load_training_data(config)
    if len(train_y) < 1 or len(test_y) < 1:
        raise ValueError(f"dataset {config.dataset!r} has no training or no test images")
    batch, per_epoch, total = plan_steps(config, len(train_y))
    model, dtype, channels_last = prepare(config, model, info, device)
    train_step = _train_step(config, model, device, dtype, criterion)
    return _Setup(device=device, model=model, train_step=train_step, dtype=dtype, channels_last=channels_last,
                  xs=_to_device(train_x, device, channels_last), ys=train_y.to(device),
                  xt=_to_device(test_x, device, channels_last), yt=test_y.to(device),
                  batch=batch, per_epoch=per_epoch, total=total)


def _train_step(config: TrainConfig, model: torch.nn.Module, device: torch.device, dtype: torch.dtype | None,
                criterion=cross_entropy) -> EagerStep | GraphStep:
    """AdamW over the model's trainable parameters and the step that runs it: captured as a CUDA graph
    on CUDA, through torch.compile when the config says so (evaluation stays eager)."""
    forward = torch.compile(model) if config.compile else model
    graphed = device.type == "cuda" and not config.compile  # compiled code is not captured again
    optimizer = adamw([p for p in model.parameters() if p.requires_grad], config.lr,
                      config.weight_decay, device, graphed=graphed)
    return (GraphStep if graphed else EagerStep)(forward, optimizer, device, config.label_smoothing, dtype, criterion)


class _Loop:
    """A run while it trains: its history, status and message, the step and epoch it has reached, and
    the progress events it sends."""

    def __init__(self, config: TrainConfig, setup: _Setup, callback: Callback | None, variant: str | None,
                 run_index: int, n_runs: int, sync_every: int):
        self.config, self.setup, self.callback, self.variant = config, setup, callback, variant
        self.run_index, self.n_runs, self.sync_every = run_index, n_runs, sync_every
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.history = new_history()
        self.status, self.message = "ok", ""
        self.step, self.epoch, self.compile_seconds = 0, 0, None
        self.together, self.position = 1, 0  # set by an ensemble that trains this run in a group
        self.loop_started = time.perf_counter()

    def emit(self, event: ProgressEvent) -> bool:
        """Send `event`; whether the callback asked to stop."""
        return self.callback is not None and wants_stop(self.callback(event))

    def event(self, kind: str, at: int | None = None, **values) -> ProgressEvent:
        """An event for step `at` (default: the last step run; steps read back in a group each
        get their own event)."""
        at = self.step if at is None else at
        total = self.setup.total
        eta = (time.perf_counter() - self.loop_started) / max(self.step, 1) * (total - at)
        return ProgressEvent(kind, at, total, self.epoch, eta_s=eta, variant=self.variant, seed=self.config.seed,
                             run_index=self.run_index, n_runs=self.n_runs, together=self.together,
                             position=self.position, **values)

    def run_epoch(self, epoch: int, last: bool) -> None:
        """Train epoch `epoch` (1-based) and evaluate it, keeping the recalibrated BatchNorm statistics
        after the `last` one; a divergence or a cancel sets status and message."""
        setup = self.setup
        self.epoch = epoch
        epoch_started = time.perf_counter()
        steps_here = min(setup.per_epoch, setup.total - self.step)
        correct = self._train_steps(steps_here)
        if self.status != "ok":
            return
        train_seconds = time.perf_counter() - epoch_started
        raw_acc, settled_acc = evaluate_epoch(setup.model, setup.xs, setup.xt, setup.yt, setup.batch,
                                               setup.channels_last, setup.dtype, seed=self.config.seed, keep=last)
        self.end_epoch(steps_here, int(correct), train_seconds, raw_acc, settled_acc)

    def end_epoch(self, steps_here: int, correct: int, train_seconds: float, raw_acc: float,
                  settled_acc: float) -> None:
        """Record the epoch's train accuracy (correct of its steps_here batches), images per second,
        raw and settled test accuracy, and send the epoch event (a stop cancels the run)."""
        setup, history, epoch = self.setup, self.history, self.epoch
        seen = steps_here * setup.batch
        history["train_acc"].append(100.0 * correct / seen)
        history["images_per_s"].append(seen / train_seconds)
        history["test_acc"].append(settled_acc)
        history["test_acc_raw"].append(raw_acc)
        history["epoch_end_step"].append(self.step)
        if self.emit(self.event("epoch", loss=history["loss"][-1], lr=history["lr"][-1],
                                test_acc=history["test_acc"][-1], train_acc=history["train_acc"][-1],
                                images_per_s=history["images_per_s"][-1])):
            self.status = "cancelled"
            self.message = f"cancelled after epoch {epoch} (step {self.step} of {setup.total})"

    def epoch_order(self, steps_here: int) -> Tensor:
        """The training images of this epoch's steps_here batches, in order: the first
        steps_here * batch of a fresh permutation from the run's seeded generator, on the device."""
        setup = self.setup
        return torch.randperm(len(setup.ys), generator=self.shuffle)[: steps_here * setup.batch].to(setup.device)

    def _train_steps(self, steps_here: int) -> Tensor:
        """Run the epoch's steps on batches of a fresh seeded permutation, reading the losses back every
        sync_every steps and at the epoch's end; the count of correct predictions on the batches."""
        setup, config = self.setup, self.config
        perm = self.epoch_order(steps_here)
        losses = torch.empty(steps_here, device=setup.device)
        correct = torch.zeros((), dtype=torch.int64, device=setup.device)
        lrs, pending = [], 0
        for i in range(steps_here):
            lr = lr_at(self.step, setup.total, config.lr, config.schedule)
            idx = perm[i * setup.batch:(i + 1) * setup.batch]
            loss, n_correct = setup.train_step(_batch(setup.xs, idx, setup.channels_last),
                                               setup.ys.index_select(0, idx), lr)
            losses[i] = loss
            correct += n_correct
            lrs.append(lr)
            self.step += 1
            pending += 1
            if config.compile and self.step == 1:
                self.compile_seconds = time.perf_counter() - self.loop_started  # compilation + the first step
            if pending < self.sync_every and i < steps_here - 1:
                continue
            self.read_back(losses[i + 1 - pending:i + 1].tolist(), lrs)
            pending = 0
            if self.status != "ok":
                break
        return correct

    def read_back(self, values: list[float], lrs: list[float]) -> None:
        """Record the losses of the last len(values) steps (lrs: this epoch's learning rates) and send
        their step events; a non-finite loss ends the run as diverged, a callback's stop as cancelled."""
        history, per_epoch, total = self.history, self.setup.per_epoch, self.setup.total
        first = self.step - len(values)
        stop = False
        for j, value in enumerate(values):
            s = first + j + 1
            history["step"].append(s)
            history["loss"].append(value)
            history["lr"].append(lrs[s - 1 - (self.epoch - 1) * per_epoch])
            history["epoch"].append(s / per_epoch)
            if not math.isfinite(value):
                self.status = "diverged"
                self.message = (f"loss became {value} at step {s} of {total} (epoch {self.epoch}, "
                                f"lr {history['lr'][-1]:.3g}); try a lower learning rate")
                return
            stop = self.emit(self.event("step", s, loss=value, lr=history["lr"][-1])) or stop
        if stop:
            self.status, self.message = "cancelled", f"cancelled at step {self.step} of {total}"


def _finish(loop: _Loop, n_epochs: int, started: float) -> RunResult:
    """The RunResult of a run that ran to the end, diverged or was cancelled (final metrics, message,
    filter covariances, weights when kept); the callback gets the "done" event."""
    config, setup, history, status = loop.config, loop.setup, loop.history, loop.status
    ran_to_end = status == "ok"
    final = {
        "test_acc": history["test_acc"][-1] if ran_to_end else None,
        "test_acc_raw": history["test_acc_raw"][-1] if ran_to_end else None,
        "train_acc": history["train_acc"][-1] if ran_to_end else None,
        "loss": history["loss"][-1] if history["loss"] and status != "diverged" else None,
    }
    message = loop.message
    if ran_to_end:
        message = f"{setup.total} steps, {n_epochs} epoch(s), test accuracy {final['test_acc']:.2f}%"
    precision = "bf16" if setup.dtype == torch.bfloat16 else "fp32"
    if ran_to_end and precision == "bf16":
        message += " (bf16 autocast)"
    if loop.compile_seconds is not None:
        message += f"; torch.compile took {loop.compile_seconds:.1f} s (first step included)"
    model = setup.model.eval()
    layer_names, covariances, filter_metrics = _final_covariances(model, config)
    final.update(filter_metrics)
    state_dict = None
    if config.keep_state_dict:
        state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    result = RunResult(config=config, history=history, final=final, status=status, message=message,
                       wall_time=time.perf_counter() - started, device=str(setup.device),
                       layer_names=layer_names, covariances=covariances, state_dict=state_dict,
                       variant=loop.variant, compile_seconds=loop.compile_seconds, precision=precision)
    if loop.callback is not None:
        loop.callback(loop.event("done", loss=final["loss"], test_acc=final["test_acc"],
                                 train_acc=final["train_acc"], status=status))
    return result


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
