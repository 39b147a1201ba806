"""Training engine: one config in, one run out, with a progress callback; and paired comparisons.

A run trains a model built by `models.build_model` on a dataset from `data.load_dataset` with AdamW
and (by default) the one-cycle schedule of the ConvMixer CIFAR-10 script: the learning rate rises
linearly from 0 to `lr` over the first 40% of steps, falls to lr/20 at 80% and to 0 at the end.
Depthwise filters are initialized by `init.init_depthwise_`; with `freeze_filters` they are never
updated. At the end the centered empirical covariance of every depthwise layer's filters is kept.

The modules, one job each:
  config      TrainConfig and its validation, RunResult, ProgressEvent, the device, the lr schedule
  inputs      the dataset cache, the step plan, the images' layout on the training device
  model       the run's network: built and initialized, prepared for the device, its final covariances
  evaluation  test accuracy, with BatchNorm statistics settled on training images
  loop        train() and estimate_time()
  comparison  paired comparisons over seeds: ComparisonPlan, compare(), summarize(), ComparisonResult
This package re-exports the names other modules use, so `from convcov_core.train import X` and
`train.X` work as they did when the engine was one module.
"""

from .comparison import (
    FREEZE_MODES,
    METRICS,
    ComparisonPlan,
    ComparisonResult,
    compare,
    compare_seconds,
    device_and_precision,
    summarize,
    variants_for,
)
from .config import (
    SCHEDULES,
    Callback,
    ProgressEvent,
    RunResult,
    TrainConfig,
    lr_at,
    new_history,
    resolve_device,
)
from .evaluation import evaluate
from .inputs import load_training_data, plan_steps
from .loop import estimate_time, train
from .model import build_model_for, model_label, size_label

__all__ = [
    "FREEZE_MODES", "METRICS", "SCHEDULES", "Callback", "ComparisonPlan", "ComparisonResult", "ProgressEvent",
    "RunResult", "TrainConfig", "build_model_for", "compare", "compare_seconds", "device_and_precision",
    "estimate_time", "evaluate", "load_training_data", "lr_at", "model_label", "new_history", "plan_steps",
    "resolve_device", "size_label", "summarize", "train", "variants_for",
]
