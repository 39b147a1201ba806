"""How the run store turns a run's parts into column values and back.

Covariances are float32 bytes of their upper triangle (k^2 (k^2 + 1) / 2 numbers per layer);
comparison rows keyed by seed get string keys for JSON; and runs stored by older versions are
read the way they were meant (their precision, their raw test accuracy).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .train import RunResult, TrainConfig


def encode_covariance(S: torch.Tensor) -> bytes:
    """Upper triangle (diagonal included), row by row, as float32 bytes."""
    m = np.asarray(torch.as_tensor(S, dtype=torch.float64).cpu(), dtype=np.float32)
    rows, cols = np.triu_indices(m.shape[0])
    return m[rows, cols].tobytes()


def decode_covariance(blob: bytes, kernel_size: int) -> torch.Tensor:
    """Inverse of encode_covariance: the symmetric k^2 x k^2 matrix as float64."""
    n = kernel_size * kernel_size
    values = np.frombuffer(blob, dtype=np.float32)
    if values.size != n * (n + 1) // 2:
        raise ValueError(f"stored covariance has {values.size} numbers, expected {n * (n + 1) // 2}")
    m = np.zeros((n, n), dtype=np.float64)
    rows, cols = np.triu_indices(n)
    m[rows, cols] = values
    m[cols, rows] = values
    return torch.from_numpy(m)


def covariance_kernel_size(S: torch.Tensor) -> int:
    """k of a k^2 x k^2 covariance."""
    return int(round(math.sqrt(S.shape[0])))


def run_kernel_size(result: RunResult) -> int | None:
    """The kernel size listed for a run: its config's, else that of its first covariance."""
    if result.config.kernel_size is not None:
        return result.config.kernel_size
    if result.covariances:
        return covariance_kernel_size(result.covariances[0])
    return None


def rows_to_json(rows: list) -> list:
    """Rows keyed by seed use int keys; JSON objects need strings."""
    return [{**r, **{k: {str(s): v for s, v in r[k].items()} for k in ("per_seed", "diffs", "statuses")}}
            for r in rows]


def stored_precision(config: TrainConfig, device: str) -> str:
    """The precision a stored run trained in: saved resolved since precisions exist; before that
    ("auto" in its config) CUDA runs used bf16 autocast and all others fp32."""
    if config.precision != "auto":
        return config.precision
    return "bf16" if device.startswith("cuda") else "fp32"


def stored_final(final: dict) -> dict:
    """A stored run's final metrics; runs saved before test accuracy was measured with settled
    BatchNorm statistics had only the raw eval-mode number, which is what test_acc_raw names now."""
    if "test_acc_raw" not in final:
        final = dict(final, test_acc_raw=final.get("test_acc"))
    return final
