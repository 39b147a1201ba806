"""What a training run is: its settings (TrainConfig, validated), its outcome (RunResult), the progress
events it sends (ProgressEvent, Callback), the device it runs on (resolve_device) and its learning-rate
schedule (lr_at: the one-cycle schedule of the ConvMixer CIFAR-10 script, or a constant rate).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from .. import init, models
from ..step import PRECISIONS
from ..validation import whole_number

SCHEDULES = ("onecycle", "constant")


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
        whole_number(self.epochs, "epochs", 1)
        whole_number(self.batch_size, "batch_size", 1)
        whole_number(self.seed, "seed", 0)
        for name in ("freeze_filters", "compile", "keep_state_dict"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("max_steps", "threads"):
            if getattr(self, name) is not None:
                whole_number(getattr(self, name), name, 1)
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
        init.check_init(self.init)
        if self.init != "default" and models.parse_spec(self.model)["niff"]:
            raise ValueError(f"{self.model} computes its filters with an MLP over frequencies (NIFF): it has "
                             f"no k x k weights for the {self.init!r} init to draw; use init 'default'")
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


@dataclass
class RunResult:
    """Outcome of one training run.

    history: per step "step" (1-based), "loss", "lr", "epoch" (fractional epoch at that step);
    per epoch "train_acc" (in train mode, over the epoch's batches), "test_acc" (eval mode after
    the BatchNorm statistics were recomputed on training images: batchnorm.recalibrate_bn_),
    "test_acc_raw" (eval mode with the statistics training left), "images_per_s" (training images
    per second of that epoch, evaluation excluded) and "epoch_end_step". final: "test_acc",
    "test_acc_raw", "train_acc", "loss" (None when the run did not get that far), and for a NIFF model
    "niff_energy_outside" (per layer, the share of its filters' energy outside the k x k crop that its
    covariance is read from: train.model.cropped_niff_filters); the weights and
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


def new_history() -> dict:
    """An empty RunResult.history (see RunResult for the keys)."""
    keys = ("step", "loss", "lr", "epoch", "train_acc", "test_acc", "test_acc_raw", "images_per_s",
            "epoch_end_step")
    return {key: [] for key in keys}


@dataclass
class ProgressEvent:
    """What the callback receives: after every step ("step"), epoch ("epoch") and at the end ("done").
    A run trained in an ensemble (convcov_core.ensemble) sends its events as a lone run would, with
    `together` the runs of its group (itself included) and `position` its place among them: the
    group's runs have the run indices run_index - position, ..., run_index - position + together - 1."""

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
    together: int = 1
    position: int = 0

    @property
    def group(self) -> range:
        """The run indices of the runs training together with this one (its own alone)."""
        return range(self.run_index - self.position, self.run_index - self.position + self.together)

    def fraction_done(self) -> float:
        """Share of the job's runs done at this event: the runs before this one's group, plus the
        group's runs each at step / total_steps, over n_runs."""
        at = self.step / self.total_steps if self.total_steps else 0.0
        return min(1.0, (self.group.start + self.together * at) / max(self.n_runs, 1))


Callback = Callable[[ProgressEvent], object]


def _wants_stop(answer) -> bool:
    """Whether a callback's answer cancels: True or "stop"."""
    return answer is True or answer == "stop"


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
