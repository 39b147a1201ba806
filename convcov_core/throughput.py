"""How long runs should take on this machine, read from the wall times of the runs it stored: an
estimate that costs no training (the Lab and Sweeps show it before anything runs), beside the timed
one (train.estimate_time, a few steps measured now).

A run whose shape (shape_key: data, model, sizes, batch, filter mode, precision, threads, device)
was stored before takes images x the median seconds a training image took in those runs, evaluation
included (wall time / work.images_per_run). A run of a new shape takes its FLOPs (work.run_flops) at
the median FLOP rate of the newest stored runs: rougher, since depthwise and pointwise passes run at
rates 10x apart (docs/performance.md, Roofline). Both carry the load the machine had then.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

import torch

from . import work
from .run_codec import stored_precision
from .step import autocast_dtype
from .train import TrainConfig, resolve_device

#: What sets the seconds a training image takes, beside the device and precision; the init scheme,
#: σ and seed do not.
SHAPE_FIELDS = ("dataset", "dataset_params", "model", "kernel_size", "patch_size", "batch_size",
                "freeze_filters", "threads", "compile")
RATE_RUNS = 20  # the newest runs whose FLOP rate stands in for a shape never stored


@dataclass(frozen=True)
class StoredEstimate:
    """seconds: the whole set of n_runs runs; same_shape: how many of them had stored runs of their
    shape, and stored_alike: how many stored runs those were; flop_rate: the FLOP/s the rest went by,
    the median of rate_runs stored runs (None when every run had its shape stored)."""

    seconds: float
    n_runs: int
    same_shape: int
    stored_alike: int
    flop_rate: float | None = None
    rate_runs: int = 0


def shape_key(config: TrainConfig, device: str | None = None) -> str:
    """The fields of `config` that set a training image's cost, with the kind of device and the
    precision it trained in (a stored run's `device`, "cuda:0" counting as "cuda"), or else resolves
    to here."""
    if device:
        kind, precision = device.split(":")[0], stored_precision(config, device)
    else:
        kind = resolve_device(config.device).type
        precision = "bf16" if autocast_dtype(config.precision, torch.device(kind)) else "fp32"
    fields = {name: getattr(config, name) for name in SHAPE_FIELDS}
    return json.dumps({**fields, "device": kind, "precision": precision}, sort_keys=True, default=str)


_FLOPS_PER_IMAGE: dict[str, float] = {}  # by shape_key: work.run_flops / work.images_per_run


def _images(config: TrainConfig) -> int | None:
    """work.images_per_run, or None where the run cannot be counted here (its dataset since deleted,
    a model or field this version does not know)."""
    try:
        return work.images_per_run(config)
    except (ValueError, RuntimeError, OSError, KeyError):
        return None


def _flops_per_image(config: TrainConfig) -> float | None:
    """Training FLOPs of one image of this run's shape (work.run_flops / its images), or None as _images."""
    key = shape_key(config, "cpu")  # FLOPs do not depend on the device
    if key not in _FLOPS_PER_IMAGE:
        try:
            _FLOPS_PER_IMAGE[key] = work.run_flops(config) / work.images_per_run(config)
        except (ValueError, RuntimeError, OSError, KeyError):
            return None
    return _FLOPS_PER_IMAGE[key]


def stored_estimate(configs, timings: list[tuple[TrainConfig, float, str]]) -> StoredEstimate | None:
    """Seconds the runs `configs` should take here, from the stored runs' (config, wall time, device)
    (RunStore.timings, newest first):
    per run, its images x the median seconds per image of stored runs of its shape, else its FLOPs
    at the median FLOP rate of the newest RATE_RUNS stored runs. None when nothing stored can be used
    or a run cannot be counted."""
    per_image: dict[str, list[float]] = {}
    rates = []
    for stored, wall_time, device in timings:
        images = _images(stored) if wall_time > 0 else None
        if images is None:
            continue
        per_image.setdefault(shape_key(stored, device), []).append(wall_time / images)
        if len(rates) < RATE_RUNS and (flops := _flops_per_image(stored)) is not None:
            rates.append(flops * images / wall_time)
    if not per_image:
        return None
    seconds, same_shape, alike, rate = 0.0, 0, set(), None
    configs = list(configs)
    for config in configs:
        if (images := _images(config)) is None:
            return None
        if (stored := per_image.get(key := shape_key(config))) is not None:
            seconds += images * statistics.median(stored)
            same_shape += 1
            alike.add(key)
            continue
        flops = _flops_per_image(config)
        if flops is None or not rates:
            return None
        rate = statistics.median(rates)
        seconds += flops * images / rate
    return StoredEstimate(seconds, len(configs), same_shape, sum(len(per_image[key]) for key in alike),
                          rate, len(rates) if rate else 0)
