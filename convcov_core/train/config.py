"""What a training run is: its settings (TrainConfig, each field described once by a Setting: type,
range, help, sweep axis or not, command-line flag; validated from those), its outcome (RunResult),
the progress events it sends (ProgressEvent, Callback), the device it runs on (resolve_device) and
its learning-rate schedule (lr_at: the one-cycle schedule of the ConvMixer CIFAR-10 script, or a
constant rate).

A field's Setting is the one description of it: TrainConfig.validate checks its range, the CLI's
compare and `sweep run` build their options from it (convcov_core.cli.args.setting_option), sweep
axes are the fields it marks as axes and are read as its type (convcov_core.sweep.grid), and the
tests check the pages' option lists against its range. Trial keys and the names of stored sweeps
are computed from canonical_dict(): every field of KEYED_FROM_THE_START as it always was, and a
field added since only when it differs from its Setting.before, so adding a field changes no stored
key (docs/library.md, "Trial keys").
"""

from __future__ import annotations

import copy
import dataclasses
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .. import init, models, settings
from ..step import PRECISIONS

SCHEDULES = ("onecycle", "constant")


class _NoBefore:
    def __repr__(self) -> str:
        return "NO_BEFORE"


#: Setting.before of a field that has none (it existed when trial keys were first stored).
NO_BEFORE: Any = _NoBefore()


@dataclass(frozen=True)
class Setting:
    """The one description of a TrainConfig field.

    help: what it does (the CLI's help, with the range added); type: int, float, bool, str, dict or
    list; low / high: the range of a number (high may be a function, read when checked: the kernel
    size cap is a setting), low_open / high_open: that end excluded; optional: None is allowed
    (help says what None means); choices: the values a string takes; axis: it may be an axis of a
    sweep; flag: compare's option that sets it (None: no option); in_key: it enters a trial's key
    (where and with how many threads a run executed does not); before: for a field added after trial
    keys were first stored (not in KEYED_FROM_THE_START), the value with which runs trained before
    it existed: at that value it stays out of keys and sweep names, and a stored config without it
    reads back with it (TrainConfig.from_dict); note: added to the message for a value out of range."""

    help: str
    type: type
    low: float | None = None
    high: float | Callable[[], float] | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    choices: tuple | None = None
    axis: bool = False
    flag: str | None = None
    in_key: bool = True
    before: Any = NO_BEFORE
    note: str = ""

    def upper(self) -> float | None:
        return self.high() if callable(self.high) else self.high

    def range_text(self) -> str:
        """The values it takes, as the CLI's help and the error messages say it: "(0, 10]", "[1, 1000]",
        "one of onecycle, constant"; "" for free text."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.type not in (int, float) or (self.low is None and self.upper() is None):
            return ""
        high = self.upper()
        left = f"{'(' if self.low_open else '['}{_plain(self.low) if self.low is not None else '-inf'}"
        right = f"{_plain(high) if high is not None else 'inf'}{')' if self.high_open or high is None else ']'}"
        return f"{left}, {right}"

    def check(self, name: str, value):
        """`value` if it is of this setting's type and in its range, else ValueError naming `name`,
        the range and the value (a whole number for int: a float or bool is refused)."""
        if value is None and self.optional:
            return value
        if self.type is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        elif self.type is int:
            try:
                number = None if isinstance(value, bool) else operator.index(value)
            except TypeError:
                number = None
            if number is None or not self._inside(number):
                raise ValueError(f"{name} must be a whole number in {self.range_text()}, got {value!r}{self._note()}")
            return number
        elif self.type is float:
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or not self._inside(value)):
                raise ValueError(f"{name} must be a finite number in {self.range_text()}, got {value!r}{self._note()}")
        elif self.choices and value not in self.choices:
            raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(map(str, self.choices))}")
        elif not isinstance(value, (list, tuple, torch.Tensor) if self.type is list else self.type):
            raise ValueError(f"{name} must be a {self.type.__name__}, got {value!r}")
        return value

    def _note(self) -> str:
        return f" ({self.note})" if self.note else ""

    def _inside(self, x) -> bool:
        high = self.upper()
        above_low = self.low is None or (x > self.low if self.low_open else x >= self.low)
        below_high = high is None or (x < high if self.high_open else x <= high)
        return above_low and below_high


def _plain(x: float) -> str:
    """1000 not 1000.0, 1e-06 as Python writes it."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def setting(help: str, type: type, **more) -> dict:
    """The metadata of a TrainConfig field described by Setting(help, type, **more)."""
    return {"setting": Setting(help, type, **more)}


def _field(default, help: str, type: type, **more):
    """A dataclass field with a default (a factory for dict and list) and its Setting."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=setting(help, type, **more))
    return field(default=default, metadata=setting(help, type, **more))


@dataclass
class TrainConfig:
    """Everything that defines a training run (a seed makes it repeatable on the same device); each
    field's Setting (settings_of) says its type, range and help."""

    dataset: str = _field("mnist5k", "mnist5k, noisy-bars, noisy-mnist, textures (offline), a torchvision "
                          "dataset in the data root, or folder:NAME", str, axis=True, flag="--dataset")
    dataset_params: dict = _field({}, "keyword arguments of the dataset, e.g. noise=0.5", dict,
                                  flag="--dataset-param")
    model: str = _field("convmixer-64/6", "convmixer-W/D, convmixer-W/D-niff (NIFF filters, read in a k x k "
                        "window), cnn-W1,W2,..., or timm:NAME (e.g. timm:convnext_atto)", str, axis=True,
                        flag="--model")
    kernel_size: int | None = _field(9, "depthwise kernel size (None: the model's own, for timm and cnn models)",
                                     int, low=1, high=settings.max_kernel_size, optional=True, axis=True,
                                     flag="--kernel-size", note="CONVCOV_MAX_KERNEL sets the cap")
    patch_size: int | None = _field(2, "patch size (None: the model's own, for timm models)", int, low=1,
                                    high=256, optional=True, axis=True, flag="--patch-size")
    init: str = _field("default", "the init scheme (convcov_core.init.SCHEMES)", str, flag="--inits")
    sigma_first: float | None = _field(None, "sigma schemes (Scheme.uses_sigma): sigma of the first layer, in "
                                       "pixels (None: 1)", float, low=0, low_open=True, high=100, optional=True,
                                       axis=True, flag="--sigma-first")
    sigma_last: float | None = _field(None, "sigma schemes: sigma of the last layer, in pixels (None: "
                                      "max(1, k/3))", float, low=0, low_open=True, high=100, optional=True,
                                      axis=True, flag="--sigma-last")
    covariances: list | None = _field(None, "the learned init's covariances, one k^2 x k^2 matrix per "
                                      "depthwise layer (in a key by their bytes)", list, optional=True,
                                      flag="--learned-from")
    freeze_filters: bool = _field(False, "the depthwise filters keep their init (never updated)", bool,
                                  axis=True, flag="--freeze")
    epochs: int = _field(2, "training epochs per run", int, low=1, high=1000, axis=True, flag="--epochs")
    batch_size: int = _field(128, "training batch size", int, low=1, high=65536, axis=True, flag="--batch-size")
    lr: float = _field(0.01, "peak learning rate (AdamW)", float, low=0, low_open=True, high=10, axis=True,
                       flag="--lr")
    weight_decay: float = _field(0.01, "AdamW weight decay", float, low=0, high=10, axis=True,
                                 flag="--weight-decay")
    schedule: str = _field("onecycle", "onecycle (0 -> lr over 40% of the steps, then down to 0) or constant",
                           str, choices=SCHEDULES, axis=True, flag="--schedule")
    label_smoothing: float = _field(0.0, "label smoothing of the cross-entropy", float, low=0, high=1,
                                    high_open=True, axis=True, flag="--label-smoothing")
    seed: int = _field(0, "random seed of the init, the data order and the dataset's draw", int, low=0,
                       high=2**32 - 1, flag="--seeds")
    device: str = _field("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps", str, flag="--device")
    max_steps: int | None = _field(None, "cap on training steps per run (None: whole epochs)", int, low=1,
                                   high=10**9, optional=True, axis=True, flag="--max-steps")
    threads: int | None = _field(None, "CPU threads for training (None: one per core that other work leaves "
                                 "free, at most torch's; train/threads.py)", int,
                                 low=1, high=1024, optional=True, flag="--threads", in_key=False)
    compile: bool = _field(False, "train through torch.compile (pays off on GPUs for long runs; compile time "
                           "is reported)", bool, axis=True, flag="--compile")
    precision: str = _field("auto", "auto: bf16 autocast on CUDA and on CPUs with AMX or AVX512-BF16, fp32 "
                            "elsewhere", str, choices=PRECISIONS, axis=True, flag="--precision")
    keep_state_dict: bool = _field(False, "keep the run's final weights (its state_dict) with its result", bool,
                                   flag="--keep-weights", in_key=False)
    data_root: str | None = _field(None, "folder for datasets (None: $CONVCOV_DATA)", str, optional=True,
                                   flag="--data-root", in_key=False)

    def validate(self) -> "TrainConfig":
        """Raise ValueError with an actionable message for any field outside its Setting's type and
        range, an unknown init scheme, or an init a NIFF model cannot take; return self."""
        for f in dataclasses.fields(self):
            f.metadata["setting"].check(f.name, getattr(self, f.name))
        if not init.get_scheme(self.init).native and models.parse_spec(self.model)["niff"]:
            raise ValueError(f"{self.model} computes its filters with an MLP over frequencies (NIFF): it has "
                             f"no k x k weights for the {self.init!r} init to draw; use init 'default'")
        return self

    def to_dict(self) -> dict:
        """JSON-safe dict; learned covariances are left out (n_covariances says how many there were)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "covariances"}
        d["dataset_params"] = dict(self.dataset_params)
        d["n_covariances"] = len(self.covariances) if self.covariances else 0
        return d

    def canonical_dict(self) -> dict:
        """to_dict() as trial keys and stored sweeps see it (canonical)."""
        return canonical(self.to_dict(), type(self))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of to_dict (unknown keys are refused; covariances may be given as nested lists). A
        field added since `d` was written reads back at its Setting.before (how runs trained then)."""
        d = dict(d)
        d.pop("n_covariances", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        for name, described in settings_of(cls).items():
            if name not in d and described.before is not NO_BEFORE:
                d[name] = copy.deepcopy(described.before)
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


def settings_of(cls=TrainConfig) -> dict[str, Setting]:
    """{field name: its Setting}, in field order, of TrainConfig (or a subclass)."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(cls)}


#: The keys of TrainConfig.to_dict() when trial keys were first stored (December 2026): each enters
#: canonical_dict() as it always did, so every key stored since stays the key of its config. A field
#: added later must give its Setting a `before` (tests/test_config_fields.py checks it). Never edit.
KEYED_FROM_THE_START = (
    "dataset", "dataset_params", "model", "kernel_size", "patch_size", "init", "sigma_first", "sigma_last",
    "freeze_filters", "epochs", "batch_size", "lr", "weight_decay", "schedule", "label_smoothing", "seed",
    "device", "max_steps", "threads", "compile", "precision", "keep_state_dict", "data_root", "n_covariances")


def canonical(d: dict, cls=TrainConfig) -> dict:
    """A config's to_dict() `d` (as written now or by an older version) without the fields added
    since KEYED_FROM_THE_START that hold their Setting.before: equal for a config written before a
    field existed and the same config read now, in the order of `d`."""
    described = settings_of(cls)

    def at_before(name, value) -> bool:
        before = described[name].before if name in described else NO_BEFORE
        return before is not NO_BEFORE and value == before

    return {k: v for k, v in d.items() if k in KEYED_FROM_THE_START or not at_before(k, v)}


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


def wants_stop(answer) -> bool:
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
