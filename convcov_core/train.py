"""Training engine: one config in, one run out, with a progress callback; and paired comparisons.

A run trains a model built by `models.build_model` on a dataset from `data.load_dataset` with AdamW
and (by default) the one-cycle schedule of the ConvMixer CIFAR-10 script: the learning rate rises
linearly from 0 to `lr` over the first 40% of steps, falls to lr/20 at 80% and to 0 at the end.
Depthwise filters are initialized by `init.init_depthwise_`; with `freeze_filters` they are never
updated. At the end the centered empirical covariance of every depthwise layer's filters is kept.

Speed: the data lives on the training device as one tensor, batches are drawn by a seeded permutation
instead of a DataLoader; the model and the data run channels_last where that pays (CPU; wide models
on CUDA); under bf16 autocast where the hardware has bf16 arithmetic (`precision="auto"`: CUDA and
CPUs with AMX or AVX512-BF16; step.py); on CPU, depthwise convs take their filter gradient from a
swapped convolution (depthwise.py: all of them under bf16, from 7 x 7 on in fp32); on CUDA with
fused AdamW, the whole step captured once as a CUDA graph and replayed (step.GraphStep). Per-step
losses stay on the device and are read back every step on CPU (free there) and every few steps on
accelerators. `compile=True` trains through torch.compile instead of the graph capture (evaluation
stays eager); its compile time is reported with the run.

Test accuracy is measured with BatchNorm statistics recomputed on training images after the
epoch's last step (batchnorm.py: "precise BN"); the eval-mode accuracy with the statistics that
training left is kept beside it as test_acc_raw. Accuracies are in percent (0-100).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from . import batchnorm, covariance, data, init, models, stats
from .depthwise import SWAPPED_MIN_TAPS, use_fast_depthwise
from .step import PRECISIONS, EagerStep, GraphStep, adamw, autocast, autocast_dtype

Tensor = torch.Tensor

SCHEDULES = ("onecycle", "constant")
_SYNC_EVERY_ACCELERATOR = 16  # steps between reading losses back from a GPU


@dataclass
class TrainConfig:
    """Everything that defines a training run (a seed makes it repeatable on the same device)."""

    dataset: str = "mnist5k"
    dataset_params: dict = field(default_factory=dict)
    model: str = "convmixer-64/6"
    kernel_size: int | None = 9
    patch_size: int | None = 2
    init: str = "default"
    sigma_first: float | None = None
    sigma_last: float | None = None
    covariances: list | None = None
    freeze_filters: bool = False
    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.01
    weight_decay: float = 0.01
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None
    threads: int | None = None
    compile: bool = False
    precision: str = "auto"
    keep_state_dict: bool = False
    data_root: str | None = None

    def validate(self) -> "TrainConfig":
        """Raise ValueError with an actionable message for any out-of-range field; return self."""
        _check_int(self.epochs, "epochs", 1)
        _check_int(self.batch_size, "batch_size", 1)
        _check_int(self.seed, "seed", 0)
        for name in ("freeze_filters", "compile", "keep_state_dict"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("max_steps", "threads"):
            if getattr(self, name) is not None:
                _check_int(getattr(self, name), name, 1)
        for name in ("lr", "weight_decay", "label_smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        init.get_scheme(self.init)
        if not isinstance(self.dataset_params, dict):
            raise ValueError("dataset_params must be a dict of keyword arguments for the dataset")
        return self

    def to_dict(self) -> dict:
        """JSON-safe dict; learned covariances are left out (n_covariances says how many there were)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "covariances"}
        d["dataset_params"] = dict(self.dataset_params)
        d["n_covariances"] = len(self.covariances) if self.covariances else 0
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of to_dict (unknown keys are refused; covariances may be given as nested lists)."""
        d = dict(d)
        d.pop("n_covariances", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        if d.get("covariances") is not None:
            d["covariances"] = [torch.as_tensor(c, dtype=torch.float64) for c in d["covariances"]]
        return cls(**d)

    def replace(self, **overrides) -> "TrainConfig":
        """A copy with some fields changed (unknown names refused with a ValueError)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **overrides)


def _check_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


@dataclass
class RunResult:
    """Outcome of one training run.

    history: per step "step" (1-based), "loss", "lr", "epoch" (fractional epoch at that step);
    per epoch "train_acc" (in train mode, over the epoch's batches), "test_acc" (eval mode after
    the BatchNorm statistics were recomputed on training images: batchnorm.recalibrate_bn_),
    "test_acc_raw" (eval mode with the statistics training left), "images_per_s" (training images
    per second of that epoch, evaluation excluded) and "epoch_end_step". final: "test_acc",
    "test_acc_raw", "train_acc", "loss" (None when the run did not get that far); the weights and
    state_dict carry the recomputed statistics. status: "ok", "diverged" or "cancelled", explained by message.
    covariances: centered empirical covariance (k^2 x k^2, float64) of each square depthwise layer's
    final filters, in the order of layer_names (empty when the filters are not finite). compile_seconds:
    wall time of the first step with config.compile (compilation included), None without.
    precision: what config.precision resolved to on this device, "bf16" (autocast) or "fp32".
    """

    config: TrainConfig
    history: dict
    final: dict
    status: str
    message: str
    wall_time: float
    device: str
    layer_names: list = field(default_factory=list)
    covariances: list = field(default_factory=list)
    state_dict: dict | None = None
    id: int | None = None
    variant: str | None = None
    compile_seconds: float | None = None
    precision: str = "fp32"


@dataclass
class ProgressEvent:
    """What the callback receives: after every step ("step"), epoch ("epoch") and at the end ("done")."""

    kind: str
    step: int
    total_steps: int
    epoch: int
    loss: float | None = None
    lr: float | None = None
    test_acc: float | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    variant: str | None = None
    seed: int | None = None
    train_acc: float | None = None
    status: str | None = None
    run_index: int = 0
    n_runs: int = 1


Callback = Callable[[ProgressEvent], object]


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda, then mps, then cpu; an explicit device must be available (ValueError otherwise)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but CUDA is not available here; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} does not exist: {torch.cuda.device_count()} GPU(s) found")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was requested but Apple MPS is not available here; use auto or cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def lr_at(step: int, total_steps: int, lr: float, schedule: str = "onecycle") -> float:
    """Learning rate for 0-based `step`: onecycle interpolates t = (step + 1) / total linearly through
    (0, 0), (0.4, lr), (0.8, lr / 20), (1, 0), as the ConvMixer CIFAR-10 script does per step."""
    if schedule == "constant":
        return lr
    t = (step + 1) / total_steps
    points = ((0.0, 0.0), (0.4, lr), (0.8, lr / 20), (1.0, 0.0))
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return 0.0


@functools.lru_cache(maxsize=1)
def _load_data_cached(name: str, root: str | None, params_json: str):
    params = json.loads(params_json)
    seed = params.pop("seed", 0)
    return data.load_dataset(name, root=root, seed=seed, **params)


def load_training_data(config: TrainConfig):
    """(train_x, train_y, test_x, test_y, info) for a config; the last dataset loaded is cached.

    The dataset's own seed is dataset_params["seed"] (default 0), independent of the training seed,
    so runs with different training seeds see the same data (what paired comparisons need).
    """
    params = json.dumps(config.dataset_params, sort_keys=True)
    return _load_data_cached(config.dataset, config.data_root, params)


def plan_steps(config: TrainConfig, n_train: int) -> tuple[int, int, int]:
    """(batch size, steps per epoch, total steps): full batches only, as the last partial one is dropped."""
    batch = min(config.batch_size, n_train)
    per_epoch = n_train // batch
    total = config.epochs * per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    return batch, per_epoch, total


_CUDA_CHANNELS_LAST_MIN_WIDTH = 128


def _channels_last(device: torch.device, model: torch.nn.Module) -> bool:
    """Whether model and data run channels_last: always on CPU (depthwise convs several times
    faster); on CUDA for depthwise convs of at least 128 channels (cuDNN's NHWC depthwise kernels
    win there and lose at 64 channels; benchmarks/train_throughput.py)."""
    if device.type == "cpu":
        return True
    widths = [conv.in_channels for _, conv in init.depthwise_convs(model)]
    return device.type == "cuda" and bool(widths) and min(widths) >= _CUDA_CHANNELS_LAST_MIN_WIDTH


def _to_device(x: Tensor, device: torch.device, channels_last: bool) -> Tensor:
    """Images N x C x H x W on device, stored N x H x W x C for channels_last: a gathered batch,
    permuted back to N x C x H x W, is then channels_last without a copy."""
    x = x.to(device=device, dtype=torch.float32)
    return x.permute(0, 2, 3, 1).contiguous() if channels_last else x.contiguous()


def _as_nchw(x: Tensor, channels_last: bool) -> Tensor:
    """The N x C x H x W view of images stored by _to_device."""
    return x.permute(0, 3, 1, 2) if channels_last else x


def _batch(x: Tensor, idx: Tensor, channels_last: bool) -> Tensor:
    return _as_nchw(x.index_select(0, idx), channels_last)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 512,
             dtype: torch.dtype | None = None) -> float:
    """Accuracy in percent of `model` (eval mode, no grad, autocast to dtype unless None) on images
    x (N x C x H x W, any layout)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=y.device)
    with autocast(y.device, dtype):
        for start in range(0, len(y), batch_size):
            xb = x[start:start + batch_size]
            correct += (model(xb).argmax(1) == y[start:start + batch_size]).sum()
    model.train(was_training)
    return 100.0 * int(correct) / max(len(y), 1)


def _evaluate_epoch(model, xs, xt, yt, batch: int, channels_last: bool, dtype, *, seed: int,
                    keep: bool) -> tuple[float, float]:
    """(raw, settled) test accuracy at the end of an epoch: raw with the BatchNorm running
    statistics as training left them, settled after batchnorm.recalibrate_bn_ on training images
    (the same number for a model without BatchNorm). keep: leave the recalibrated statistics in
    the model (the last epoch: the network a run hands back); otherwise put the old ones back, so
    the rest of training does not depend on how it was evaluated."""
    def test_accuracy() -> float:
        return evaluate(model, _as_nchw(xt, channels_last), yt, batch_size=max(256, 2 * batch), dtype=dtype)

    raw = test_accuracy()
    if not batchnorm.batchnorms(model):
        return raw, raw
    saved = None if keep else batchnorm.bn_state(model)
    batches = batchnorm.training_batches(xs, batch, seed=seed,
                                         as_batch=lambda x, idx: _batch(x, idx, channels_last))
    batchnorm.recalibrate_bn_(model, batches, dtype=dtype)
    settled = test_accuracy()
    if saved is not None:
        batchnorm.load_bn_state_(model, saved)
    return raw, settled


def build_model_for(config: TrainConfig, info) -> torch.nn.Module:
    """The config's model with its depthwise filters initialized, seeded by config.seed (global RNG
    state of the caller is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = models.build_model(config.model, num_classes=len(info.classes), in_chans=info.in_chans,
                                   kernel_size=config.kernel_size, patch_size=config.patch_size)
    generator = torch.Generator().manual_seed(config.seed)
    init.init_depthwise_(model, config.init, sigma_first=config.sigma_first,
                         sigma_last=config.sigma_last, covariances=config.covariances,
                         generator=generator)
    return model


def size_label(size: int | None) -> str:
    """A config's kernel or patch size as setup lines print it; None keeps the model's own."""
    return "its own" if size is None else str(size)


def model_label(config: TrainConfig) -> str:
    """'convmixer-64/6 (kernel 9, patch 2)', as messages name a config's model."""
    return f"{config.model} (kernel {size_label(config.kernel_size)}, patch {size_label(config.patch_size)})"


def _final_covariances(model: torch.nn.Module) -> tuple[list[str], list[Tensor]]:
    """Names and centered covariances of the square depthwise layers (band filters such as 1 x 9
    have no k^2 x k^2 covariance to transfer); no covariances when a filter is not finite."""
    layers = [(name, conv) for name, conv in init.depthwise_convs(model)
              if conv.kernel_size[0] == conv.kernel_size[1]]
    names = [name for name, _ in layers]
    weights = [conv.weight.detach().float().cpu() for _, conv in layers]
    if not all(torch.isfinite(w).all() for w in weights):
        return names, []
    return names, [covariance.empirical(w, centered=True) for w in weights]


def new_history() -> dict:
    """An empty RunResult.history (see RunResult for the keys)."""
    keys = ("step", "loss", "lr", "epoch", "train_acc", "test_acc", "test_acc_raw", "images_per_s",
            "epoch_end_step")
    return {key: [] for key in keys}


def _wants_stop(answer) -> bool:
    return answer is True or answer == "stop"


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
    device = resolve_device(config.device)
    train_x, train_y, test_x, test_y, info = load_training_data(config)
    if len(train_y) < 1 or len(test_y) < 1:
        raise ValueError(f"dataset {config.dataset!r} has no training or no test images")
    batch, per_epoch, total = plan_steps(config, len(train_y))

    if model is None:
        model = build_model_for(config, info)
    models.check_input_size(model, info.in_chans, info.image_size, model_label(config), config.dataset)
    if config.freeze_filters:
        for _, conv in init.depthwise_convs(model):
            conv.weight.requires_grad_(False)
    dtype = autocast_dtype(config.precision, device)
    if device.type == "cpu":
        use_fast_depthwise(model, min_taps=1 if dtype == torch.bfloat16 else SWAPPED_MIN_TAPS)
    channels_last = _channels_last(device, model)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=layout).train()
    forward = torch.compile(model) if config.compile else model  # evaluation stays eager
    graphed = device.type == "cuda" and not config.compile  # compiled code is not captured again
    optimizer = adamw([p for p in model.parameters() if p.requires_grad], config.lr,
                      config.weight_decay, device, graphed=graphed)
    train_step = (GraphStep if graphed else EagerStep)(forward, optimizer, device, config.label_smoothing, dtype)

    xs, ys = _to_device(train_x, device, channels_last), train_y.to(device)
    xt, yt = _to_device(test_x, device, channels_last), test_y.to(device)
    shuffle = torch.Generator().manual_seed(config.seed)
    if sync_every is None:
        sync_every = 1 if device.type == "cpu" else _SYNC_EVERY_ACCELERATOR
    _check_int(sync_every, "sync_every", 1)
    history = new_history()
    status, message = "ok", ""
    step, compile_seconds = 0, None
    loop_started = time.perf_counter()

    def emit(event: ProgressEvent) -> bool:
        return callback is not None and _wants_stop(callback(event))

    def event(kind: str, at: int | None = None, **values) -> ProgressEvent:
        """An event for step `at` (default: the last step run; steps read back in a group each
        get their own event)."""
        at = step if at is None else at
        eta = (time.perf_counter() - loop_started) / max(step, 1) * (total - at)
        return ProgressEvent(kind, at, total, epoch, eta_s=eta, variant=variant, seed=config.seed,
                             run_index=run_index, n_runs=n_runs, **values)

    n_epochs = math.ceil(total / per_epoch)
    epoch = 0
    for epoch in range(1, n_epochs + 1):
        epoch_started = time.perf_counter()
        steps_here = min(per_epoch, total - step)
        perm = torch.randperm(len(train_y), generator=shuffle)[: steps_here * batch].to(device)
        losses = torch.empty(steps_here, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        lrs, pending = [], 0
        for i in range(steps_here):
            lr = lr_at(step, total, config.lr, config.schedule)
            idx = perm[i * batch:(i + 1) * batch]
            loss, n_correct = train_step(_batch(xs, idx, channels_last), ys.index_select(0, idx), lr)
            losses[i] = loss
            correct += n_correct
            lrs.append(lr)
            step += 1
            pending += 1
            if config.compile and step == 1:
                compile_seconds = time.perf_counter() - loop_started  # compilation + the first step
            if pending < sync_every and i < steps_here - 1:
                continue
            values = losses[i + 1 - pending:i + 1].tolist()
            first = step - pending
            pending = 0
            stop = False
            for j, value in enumerate(values):
                s = first + j + 1
                history["step"].append(s)
                history["loss"].append(value)
                history["lr"].append(lrs[s - 1 - (epoch - 1) * per_epoch])
                history["epoch"].append(s / per_epoch)
                if not math.isfinite(value):
                    status = "diverged"
                    message = (f"loss became {value} at step {s} of {total} (epoch {epoch}, "
                               f"lr {history['lr'][-1]:.3g}); try a lower learning rate")
                    break
                stop = emit(event("step", s, loss=value, lr=history["lr"][-1])) or stop
            if status == "diverged":
                break
            if stop:
                status, message = "cancelled", f"cancelled at step {step} of {total}"
                break
        if status != "ok":
            break
        train_seconds = time.perf_counter() - epoch_started
        seen = steps_here * batch
        history["train_acc"].append(100.0 * int(correct) / seen)
        history["images_per_s"].append(seen / train_seconds)
        raw_acc, settled_acc = _evaluate_epoch(model, xs, xt, yt, batch, channels_last, dtype,
                                               seed=config.seed, keep=epoch == n_epochs)
        history["test_acc"].append(settled_acc)
        history["test_acc_raw"].append(raw_acc)
        history["epoch_end_step"].append(step)
        if emit(event("epoch", loss=history["loss"][-1], lr=history["lr"][-1],
                      test_acc=history["test_acc"][-1], train_acc=history["train_acc"][-1],
                      images_per_s=history["images_per_s"][-1])):
            status, message = "cancelled", f"cancelled after epoch {epoch} (step {step} of {total})"
            break

    ran_to_end = status == "ok"
    final = {
        "test_acc": history["test_acc"][-1] if ran_to_end else None,
        "test_acc_raw": history["test_acc_raw"][-1] if ran_to_end else None,
        "train_acc": history["train_acc"][-1] if ran_to_end else None,
        "loss": history["loss"][-1] if history["loss"] and status != "diverged" else None,
    }
    if ran_to_end:
        message = f"{total} steps, {n_epochs} epoch(s), test accuracy {final['test_acc']:.2f}%"
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    if ran_to_end and precision == "bf16":
        message += " (bf16 autocast)"
    if compile_seconds is not None:
        message += f"; torch.compile took {compile_seconds:.1f} s (first step included)"
    model.eval()
    layer_names, covariances = _final_covariances(model)
    state_dict = None
    if config.keep_state_dict:
        state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    result = RunResult(config=config, history=history, final=final, status=status, message=message,
                       wall_time=time.perf_counter() - started, device=str(device),
                       layer_names=layer_names, covariances=covariances, state_dict=state_dict,
                       variant=variant, compile_seconds=compile_seconds, precision=precision)
    if callback is not None:
        callback(event("done", loss=final["loss"], test_acc=final["test_acc"],
                       train_acc=final["train_acc"], status=status))
    return result


def estimate_time(config: TrainConfig, n_steps: int = 3) -> float:
    """Seconds the whole run should take: time n_steps measured steps (after one warm-up step) and one
    pass over the test set, then scale to the run's step and epoch counts."""
    config.validate()
    _check_int(n_steps, "n_steps", 1)
    train_x, train_y, *_ = load_training_data(config)
    _, per_epoch, total = plan_steps(config, len(train_y))
    stamps = []

    def clock(event: ProgressEvent):
        stamps.append((event.kind, time.perf_counter()))

    probe = config.replace(max_steps=n_steps + 1, epochs=1, keep_state_dict=False, device=config.device)
    train(probe, clock, sync_every=1)
    steps = [t for kind, t in stamps if kind == "step"]
    step_seconds = (steps[-1] - steps[0]) / max(len(steps) - 1, 1)
    eval_seconds = next(t for kind, t in stamps if kind == "epoch") - steps[-1]
    return step_seconds * total + eval_seconds * math.ceil(total / per_epoch)


# ---------------------------------------------------------------------------------------------
# Comparisons over seeds
# ---------------------------------------------------------------------------------------------


@dataclass
class ComparisonResult:
    """Runs of several variants over the same seeds, with paired statistics.

    rows: one dict per variant: variant, reference (the variant it is paired against), n (finished
    seeds), mean, std, per_seed {seed: metric or None}, diffs {seed: diff}, diff_mean, diff_std,
    diff_low / diff_high (the 95% t interval of the mean difference), winner (the variant that
    stats.paired_verdict names, or None), wins (seeds where it beat its reference), losses,
    mean_time (s per run), statuses. verdicts: one sentence per non-reference variant; verdict joins
    them. metric: the final-metric key judged (METRICS).
    """

    base_config: TrainConfig
    variants: dict
    seeds: list
    runs: dict
    rows: list
    verdicts: list
    wall_time: float
    status: str = "ok"
    references: dict = field(default_factory=dict)
    id: int | None = None
    metric: str = "test_acc"

    @property
    def verdict(self) -> str:
        return " ".join(self.verdicts)

    def judged_on(self, metric: str) -> "ComparisonResult":
        """The same runs with the table and verdicts worked out on another final metric (METRICS)."""
        rows, verdicts = summarize(self.variants, self.seeds, self.runs, self.references, metric)
        return dataclasses.replace(self, rows=rows, verdicts=verdicts, metric=metric)

    def variants_dict(self) -> dict:
        """The variants' overrides as plain data: learned covariances become their count
        (n_covariances, as in TrainConfig.to_dict; each run keeps its own in its config)."""
        out = {}
        for name, overrides in self.variants.items():
            out[name] = {key: value for key, value in overrides.items() if key != "covariances"}
            if overrides.get("covariances") is not None:
                out[name]["n_covariances"] = len(overrides["covariances"])
        return out

    def to_dict(self) -> dict:
        """JSON-safe summary: configs, rows, verdicts and every run's final metrics and history."""
        return {
            "base_config": self.base_config.to_dict(),
            "variants": self.variants_dict(),
            "references": self.references,
            "metric": self.metric,
            "seeds": self.seeds,
            "rows": self.rows,
            "verdicts": self.verdicts,
            "wall_time": self.wall_time,
            "status": self.status,
            "runs": {
                name: [{"seed": r.config.seed, "status": r.status, "message": r.message,
                        "final": r.final, "wall_time": r.wall_time, "device": r.device,
                        "history": r.history} for r in runs]
                for name, runs in self.runs.items()
            },
        }


#: What a comparison judges: the final test accuracy with settled BatchNorm statistics (the
#: headline), or the raw eval-mode accuracy with the statistics training left (--raw-bn-eval).
METRICS = {"test_acc": "test accuracy", "test_acc_raw": "raw eval-mode test accuracy"}


def summarize(variants: dict, seeds: list, runs: dict, references: dict,
              metric: str = "test_acc") -> tuple[list, list]:
    """(rows, verdicts) from finished runs, judged on final[metric] by stats.paired_verdict; see
    ComparisonResult for the row fields."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    rows, verdicts = [], []
    for name in variants:
        by_seed = {r.config.seed: r for r in runs.get(name, [])}
        acc = {s: by_seed[s].final.get(metric) if s in by_seed else None for s in seeds}
        spread = stats.mean_interval(acc.values())
        ref = references.get(name)
        row = {"variant": name, "reference": ref, "n": spread.n, "mean": spread.mean, "std": spread.std,
               "per_seed": acc, "diffs": {}, "diff_mean": None, "diff_std": None, "diff_low": None,
               "diff_high": None, "winner": None, "wins": 0, "losses": 0,
               "mean_time": (sum(r.wall_time for r in by_seed.values()) / len(by_seed)) if by_seed else None,
               "statuses": {s: by_seed[s].status for s in seeds if s in by_seed}}
        if ref is not None:
            ref_acc = {r.config.seed: r.final.get(metric) for r in runs.get(ref, [])}
            paired = [s for s in seeds if acc[s] is not None and ref_acc.get(s) is not None]
            verdict = stats.paired_verdict([acc[s] for s in paired], [ref_acc[s] for s in paired])
            row.update(diffs=dict(zip(paired, verdict.diffs)), diff_mean=verdict.mean, diff_std=verdict.std,
                       diff_low=verdict.low, diff_high=verdict.high,
                       winner={"a": name, "b": ref}.get(verdict.winner), wins=verdict.favour_a,
                       losses=verdict.favour_b)
            verdicts.append(verdict.sentence(name, ref))
        rows.append(row)
    return rows, verdicts


def device_and_precision(cmp: "ComparisonResult") -> str:
    """Where and in what precision a comparison's runs trained, e.g. "cpu, bf16 autocast"."""
    run = next((r for runs in cmp.runs.values() for r in runs), None)
    if run is None:
        return "?"
    return f"{run.device}, bf16 autocast" if run.precision == "bf16" else f"{run.device}, fp32"


FREEZE_MODES = ("none", "filters", "both")


def variants_for(inits: list[str], freeze: str) -> tuple[dict, dict]:
    """(variants, references) for compare(): every init scheme in `inits`, with its depthwise filters
    trained (freeze "none"), frozen ("filters") or both ("default", "default-frozen", ...); each
    variant is paired with the first init of its own kind."""
    if freeze not in FREEZE_MODES:
        raise ValueError(f"freeze must be one of {', '.join(FREEZE_MODES)}, got {freeze!r}")
    if len(set(inits)) != len(inits):
        raise ValueError(f"the init schemes list one twice: {','.join(inits)}")
    modes = {"none": [False], "filters": [True], "both": [False, True]}[freeze]
    variants, references = {}, {}
    for frozen in modes:
        names = [f"{i}-frozen" if frozen else i for i in inits]
        for scheme, name in zip(inits, names):
            variants[name] = {"init": scheme, "freeze_filters": frozen}
            references[name] = names[0] if name != names[0] else None
    return variants, references


def compare(base_config: TrainConfig, variants: dict, seeds, callback: Callback | None = None, *,
            references: dict | None = None, metric: str = "test_acc") -> ComparisonResult:
    """Train every variant (overrides of base_config) once per seed, seed by seed, and compare the
    final test accuracies (final[metric]: settled BatchNorm statistics by default, see METRICS):
    mean ± std per variant and paired differences against a reference variant (the first one
    unless `references` maps a variant to another). A callback answer of True/"stop" cancels the
    remaining runs; the finished ones are summarized."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    if not variants:
        raise ValueError("compare needs at least one variant")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("compare needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    first = next(iter(variants))
    references = dict(references or {})
    for name, ref in references.items():
        if name not in variants or (ref is not None and ref not in variants):
            raise ValueError(f"reference {name!r} -> {ref!r} names a variant that is not being run")
    refs = {name: references.get(name, first if name != first else None) for name in variants}
    configs = {name: base_config.replace(**overrides).validate() for name, overrides in variants.items()}
    for seed in seeds:
        configs[first].replace(seed=seed).validate()

    started = time.perf_counter()
    runs = {name: [] for name in variants}
    cancelled = False
    n_runs = len(variants) * len(seeds)
    for s_i, seed in enumerate(seeds):
        for v_i, name in enumerate(variants):
            stop = []

            def relay(event: ProgressEvent):
                answer = callback(event) if callback is not None else None
                if _wants_stop(answer):
                    stop.append(True)
                return answer

            result = train(configs[name].replace(seed=seed), relay, variant=name,
                           run_index=s_i * len(variants) + v_i, n_runs=n_runs)
            if result.status == "cancelled" or stop:
                cancelled = True
                break
            runs[name].append(result)
        if cancelled:
            break
    rows, verdicts = summarize(variants, seeds, runs, refs, metric)
    return ComparisonResult(base_config=base_config, variants=dict(variants), seeds=seeds, runs=runs,
                            rows=rows, verdicts=verdicts, wall_time=time.perf_counter() - started,
                            status="cancelled" if cancelled else "ok", references=refs, metric=metric)
