"""Training engine: one config in, one run out, with a progress callback; or a group of configs
trained together through one network that holds them all (train_group; a lone run is a group of one).

A run trains a model built by `models.build_model` on a dataset from `data.load_dataset` with AdamW
and (by default) the one-cycle schedule of the ConvMixer CIFAR-10 script: the learning rate rises
linearly from 0 to `lr` over the first 40% of steps, falls to lr/20 at 80% and to 0 at the end.
The model is initialized by `init.init_model_` as its scheme says (the depthwise filters by
`init.init_depthwise_`); with `freeze_filters` the depthwise filters are never updated. At the end
the centered empirical covariance of every depthwise layer's filters is kept.

The modules, one job each:
  config      TrainConfig and its validation, RunResult, ProgressEvent, the device, the lr schedule
  inputs      the dataset cache, the step plan, the images' layout on the training device
  model       the run's network: built and initialized, prepared for the device, its final covariances
  evaluation  test accuracy, with BatchNorm statistics settled on training images
  network     the Network a group trains through (the protocol), OwnNetwork (one run's), make_step
  run_state   one run of a group while it trains (history, status, events) and its RunResult
  loop        train_group(), train() and estimate_time()
This package re-exports the names other modules use, so `from convcov_core.train import X` and
`train.X` work as they did when the engine was one module.
"""

from .config import (
    SCHEDULES,
    Callback,
    ProgressEvent,
    RunResult,
    TrainConfig,
    lr_at,
    new_history,
    resolve_device,
    wants_stop,
)
from .evaluation import evaluate
from .inputs import load_training_data, plan_steps
from .loop import estimate_time, train, train_group
from .model import build_model_for, model_label, size_label
from .network import Network, OwnNetwork, Setup

__all__ = [
    "SCHEDULES", "Callback", "Network", "OwnNetwork", "ProgressEvent", "RunResult", "Setup", "TrainConfig",
    "build_model_for", "estimate_time", "evaluate", "load_training_data", "lr_at", "model_label", "new_history",
    "plan_steps", "resolve_device", "size_label", "train", "train_group", "wants_stop",
]
