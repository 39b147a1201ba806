"""Every CONVCOV_* environment variable, parsed and validated in one place.

Each function reads its variable when called (so a test or a server can change it), from
`environ` (default os.environ); an unset or blank variable gives the default, a bad value a
ValueError that names the variable, the value and what it accepts.

    CONVCOV_HOME               folder of the run store, covariance sets, reports   ~/.convcov
    CONVCOV_DATA               data root (torchvision datasets, image folders)     $CONVCOV_HOME/data
    CONVCOV_MAX_KERNEL         largest kernel size offered and accepted (odd)      51
    CONVCOV_REFRESH_S          seconds between refreshes of a running job          2
    CONVCOV_MAX_CHECKPOINT_MB  largest checkpoint or matrix file read (MiB)        512
    CONVCOV_MAX_JOBS           background jobs the app runs at once                1
    CONVCOV_MAX_JOB_SAMPLES    training images one app job may use                 200,000
    CONVCOV_MAX_SWEEP_TRIALS   trials one sweep may expand to                      10,000
    CONVCOV_RAY_ADDRESS        Ray cluster of `--executor ray` and the Sweeps      the CLI: a Ray
                               page (auto, host:port, ray://host:10001)            started here
    CONVCOV_RAY_LOCAL          the app may start a Ray on its own machine when     off
                               CONVCOV_RAY_ADDRESS is unset (1/true/yes/on)
    CONVCOV_DEBUG              CLI: show tracebacks instead of one-line errors     off
"""

from __future__ import annotations

import math
import os
from pathlib import Path

DEFAULT_MAX_KERNEL = 51
#: With the browser on the same 2-core machine, refreshing every second made the Training Lab's
#: runs 1.3-1.5x slower than every 2 s (benchmarks/served_training.py).
DEFAULT_REFRESH_S = 2.0
DEFAULT_MAX_CHECKPOINT_MB = 512
DEFAULT_MAX_JOBS = 1
DEFAULT_MAX_JOB_SAMPLES = 200_000
#: The Lab's presets train with 0.5-7.8 TFLOP (convcov_core/work.py); one ConvMixer-512/16 with k = 51
#: on 28 x 28 digits at patch 1 needs 476 TFLOP an epoch, days on a CPU.
DEFAULT_MAX_JOB_TFLOP = 50
DEFAULT_MAX_SWEEP_TRIALS = 10_000


def _raw(name: str, environ) -> str:
    return (os.environ if environ is None else environ).get(name, "").strip()


def home(environ=None) -> Path:
    """$CONVCOV_HOME, else ~/.convcov (not created here: paths.convcov_home does that)."""
    return Path(_raw("CONVCOV_HOME", environ) or "~/.convcov").expanduser()


def data(environ=None) -> Path | None:
    """$CONVCOV_DATA, or None for the default ($CONVCOV_HOME/data)."""
    raw = _raw("CONVCOV_DATA", environ)
    return Path(raw).expanduser() if raw else None


def max_kernel_size(environ=None) -> int:
    """Largest kernel size offered by the pages and accepted by the CLI: $CONVCOV_MAX_KERNEL (odd,
    >= 3), default 51. A k x k filter's covariance has k^4 entries (51: 6.8 million)."""
    raw = _raw("CONVCOV_MAX_KERNEL", environ)
    if not raw:
        return DEFAULT_MAX_KERNEL
    if not raw.isdigit() or int(raw) < 3 or int(raw) % 2 == 0:
        raise ValueError(f"CONVCOV_MAX_KERNEL must be an odd whole number >= 3, got {raw!r}; "
                         f"unset it to use the default of {DEFAULT_MAX_KERNEL}")
    return int(raw)


def refresh_seconds(environ=None) -> float:
    """Seconds between progress refreshes of a running job: $CONVCOV_REFRESH_S (0.5 to 60), default 2."""
    raw = _raw("CONVCOV_REFRESH_S", environ)
    if not raw:
        return DEFAULT_REFRESH_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.5 <= value <= 60:
        raise ValueError(f"CONVCOV_REFRESH_S must be a number of seconds from 0.5 to 60, got {raw!r}; "
                         f"unset it to use the default of {DEFAULT_REFRESH_S:g}")
    return value


def max_checkpoint_bytes(environ=None) -> int:
    """Largest checkpoint or matrix file read: $CONVCOV_MAX_CHECKPOINT_MB mebibytes (> 0), default 512."""
    raw = _raw("CONVCOV_MAX_CHECKPOINT_MB", environ)
    if not raw:
        return DEFAULT_MAX_CHECKPOINT_MB * 1024 * 1024
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"CONVCOV_MAX_CHECKPOINT_MB must be a number > 0, got {raw!r}")
    return int(value * 1024 * 1024)


def _whole(name: str, default: int, environ) -> int:
    raw = _raw(name, environ)
    if not raw:
        return default
    try:
        value = int(raw.replace("_", "").replace(",", ""))
    except ValueError:
        raise ValueError(f"{name} must be a whole number >= 1, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {raw!r}")
    return value


def max_jobs(environ=None) -> int:
    """Background jobs the app runs at once: $CONVCOV_MAX_JOBS (>= 1), default 1."""
    return _whole("CONVCOV_MAX_JOBS", DEFAULT_MAX_JOBS, environ)


def max_job_samples(environ=None) -> int:
    """Training images (steps x batch over every run) one app job may use: $CONVCOV_MAX_JOB_SAMPLES."""
    return _whole("CONVCOV_MAX_JOB_SAMPLES", DEFAULT_MAX_JOB_SAMPLES, environ)


def max_job_tflop(environ=None) -> int:
    """Training arithmetic one app job may use, in TFLOP (work.run_flops over its runs):
    $CONVCOV_MAX_JOB_TFLOP, default 50."""
    return _whole("CONVCOV_MAX_JOB_TFLOP", DEFAULT_MAX_JOB_TFLOP, environ)


def max_sweep_trials(environ=None) -> int:
    """Trials (cells x schemes x seeds) one sweep may expand to: $CONVCOV_MAX_SWEEP_TRIALS, default 10,000."""
    return _whole("CONVCOV_MAX_SWEEP_TRIALS", DEFAULT_MAX_SWEEP_TRIALS, environ)


def ray_address(environ=None) -> str | None:
    """$CONVCOV_RAY_ADDRESS ("auto", "host:port" or "ray://host:10001"), or None: `--executor ray`
    then starts a Ray instance on this machine, and the app only where ray_local() allows it."""
    return _raw("CONVCOV_RAY_ADDRESS", environ) or None


_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def ray_local(environ=None) -> bool:
    """$CONVCOV_RAY_LOCAL: whether the app (the Sweeps page's Connect) may start a Ray on the server
    when CONVCOV_RAY_ADDRESS is unset. Off unless set to 1, true, yes or on: the operator's choice,
    since a visitor would otherwise start Ray's daemons on the server."""
    raw = _raw("CONVCOV_RAY_LOCAL", environ)
    if raw.lower() in _ON:
        return True
    if raw.lower() in ("", *_OFF):
        return False
    raise ValueError(f"CONVCOV_RAY_LOCAL must be 1, true, yes or on (or 0, false, no, off), got {raw!r}; "
                     "unset it to keep the app from starting Ray on this machine")


def debug(environ=None) -> bool:
    """$CONVCOV_DEBUG set to anything but empty, 0, false or no: the CLI shows tracebacks."""
    return _raw("CONVCOV_DEBUG", environ).lower() not in ("", "0", "false", "no")
