"""One run of a group while it trains (RunState: its data order, history, status, progress events)
and the RunResult it ends with (finish_run)."""

from __future__ import annotations

import math
import time

import torch

from .config import Callback, ProgressEvent, RunResult, TrainConfig, new_history, wants_stop
from .model import _final_covariances
from .network import Setup

Tensor = torch.Tensor


class RunState:
    """A run while it trains: its history, status and message, the step and epoch it has reached, and
    the progress events it sends (labelled variant, run_index of n_runs; `together` runs train in its
    group, this one at `position`)."""

    def __init__(self, config: TrainConfig, setup: Setup, callback: Callback | None, variant: str | None = None,
                 run_index: int = 0, n_runs: int = 1, together: int = 1, position: int = 0):
        self.config, self.callback, self.variant = config, callback, variant
        self.run_index, self.n_runs, self.together, self.position = run_index, n_runs, together, position
        self.device, self.dtype, self.n_train = setup.device, setup.dtype, len(setup.ys)
        self.batch, self.per_epoch, self.total = setup.batch, setup.per_epoch, setup.total
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.history = new_history()
        self.status, self.message = "ok", ""
        self.step, self.epoch, self.compile_seconds = 0, 0, None
        self.loop_started = time.perf_counter()

    def emit(self, event: ProgressEvent) -> bool:
        """Send `event`; whether the callback asked to stop."""
        return self.callback is not None and wants_stop(self.callback(event))

    def event(self, kind: str, at: int | None = None, **values) -> ProgressEvent:
        """An event for step `at` (default: the last step run; steps read back in a group each
        get their own event)."""
        at = self.step if at is None else at
        eta = (time.perf_counter() - self.loop_started) / max(self.step, 1) * (self.total - at)
        return ProgressEvent(kind, at, self.total, self.epoch, eta_s=eta, variant=self.variant, seed=self.config.seed,
                             run_index=self.run_index, n_runs=self.n_runs, together=self.together,
                             position=self.position, **values)

    def epoch_order(self, steps_here: int) -> Tensor:
        """The training images of this epoch's steps_here batches, in order: the first
        steps_here * batch of a fresh permutation from the run's seeded generator, on the device."""
        return torch.randperm(self.n_train, generator=self.shuffle)[: steps_here * self.batch].to(self.device)

    def read_back(self, values: list[float], lrs: list[float]) -> None:
        """Record the losses of the last len(values) steps (lrs: this epoch's learning rates) and send
        their step events; a non-finite loss ends the run as diverged, a callback's stop as cancelled."""
        history, per_epoch, total = self.history, self.per_epoch, self.total
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

    def end_epoch(self, steps_here: int, correct: int, train_seconds: float, raw_acc: float,
                  settled_acc: float) -> None:
        """Record the epoch's train accuracy (correct of its steps_here batches), images per second,
        raw and settled test accuracy, and send the epoch event (a stop cancels the run)."""
        history, epoch = self.history, self.epoch
        seen = steps_here * self.batch
        history["train_acc"].append(100.0 * correct / seen)
        history["images_per_s"].append(seen / train_seconds)
        history["test_acc"].append(settled_acc)
        history["test_acc_raw"].append(raw_acc)
        history["epoch_end_step"].append(self.step)
        if self.emit(self.event("epoch", loss=history["loss"][-1], lr=history["lr"][-1],
                                test_acc=history["test_acc"][-1], train_acc=history["train_acc"][-1],
                                images_per_s=history["images_per_s"][-1])):
            self.status = "cancelled"
            self.message = f"cancelled after epoch {epoch} (step {self.step} of {self.total})"


def finish_run(run: RunState, model: torch.nn.Module, n_epochs: int, started: float) -> RunResult:
    """The RunResult of a run that ran to the end, diverged or was cancelled, `model` its network
    (final metrics, message, filter covariances, weights when kept); the callback gets the "done" event."""
    config, history, status = run.config, run.history, run.status
    ran_to_end = status == "ok"
    final = {
        "test_acc": history["test_acc"][-1] if ran_to_end else None,
        "test_acc_raw": history["test_acc_raw"][-1] if ran_to_end else None,
        "train_acc": history["train_acc"][-1] if ran_to_end else None,
        "loss": history["loss"][-1] if history["loss"] and status != "diverged" else None,
    }
    message = run.message
    if ran_to_end:
        message = f"{run.total} steps, {n_epochs} epoch(s), test accuracy {final['test_acc']:.2f}%"
    precision = "bf16" if run.dtype == torch.bfloat16 else "fp32"
    if ran_to_end and precision == "bf16":
        message += " (bf16 autocast)"
    if run.compile_seconds is not None:
        message += f"; torch.compile took {run.compile_seconds:.1f} s (first step included)"
    model = model.eval()
    layer_names, covariances, filter_metrics = _final_covariances(model, config)
    final.update(filter_metrics)
    state_dict = None
    if config.keep_state_dict:
        state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    result = RunResult(config=config, history=history, final=final, status=status, message=message,
                       wall_time=time.perf_counter() - started, device=str(run.device),
                       layer_names=layer_names, covariances=covariances, state_dict=state_dict,
                       variant=run.variant, compile_seconds=run.compile_seconds, precision=precision)
    if run.callback is not None:
        run.callback(run.event("done", loss=final["loss"], test_acc=final["test_acc"],
                               train_acc=final["train_acc"], status=status))
    return result
