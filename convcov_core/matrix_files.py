"""Matrices in and out of files: .npy (no pickles), .pt/.pth (torch weights_only) and .safetensors.

Files come from users and are untrusted: nothing is ever unpickled. `inspect_covariance` says what is
wrong with a matrix meant as a k^2 x k^2 filter covariance (shape, NaN, asymmetry, negative
eigenvalues); a non-PSD matrix can be projected onto the nearest PSD one (`covariance.nearest_psd`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import covariance

Tensor = torch.Tensor

MATRIX_SUFFIXES = (".npy", ".pt", ".pth", ".safetensors")
DEFAULT_MAX_MATRIX_BYTES = 64 * 1024 * 1024  # k = 51 in float64 is 54 MB
_NPY_MAGIC = b"\x93NUMPY"


def check_suffix(name: str) -> Path:
    """Path(name) if its suffix is one of MATRIX_SUFFIXES, else a ValueError naming them."""
    p = Path(name)
    if p.suffix.lower() not in MATRIX_SUFFIXES:
        raise ValueError(f"{name}: use a file name ending in {', '.join(MATRIX_SUFFIXES)}")
    return p


def save_tensor(tensor: Tensor, path: str, key: str) -> Path:
    """Write one tensor as .npy, .pt (loadable with weights_only=True) or .safetensors {key: tensor}."""
    p = check_suffix(path)
    if not p.parent.is_dir():
        raise ValueError(f"{path}: folder {p.parent} does not exist")
    tensor = tensor.detach().cpu().contiguous()
    suffix = p.suffix.lower()
    if suffix == ".npy":
        np.save(p, tensor.numpy())
    elif suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file({key: tensor}, p)
    else:
        torch.save(tensor, p)
    return p


def read_matrix(data: bytes, filename: str, *, max_bytes: int = DEFAULT_MAX_MATRIX_BYTES) -> Tensor:
    """The one tensor in a file's bytes (a .safetensors file may hold several if one is named
    "covariance"). ValueError, never an unpickled object, for anything else."""
    suffix = check_suffix(filename).suffix.lower()
    if not data:
        raise ValueError(f"{filename} is empty")
    if len(data) > max_bytes:
        raise ValueError(f"{filename} is {len(data) / 2**20:.1f} MiB; the limit for a matrix is "
                         f"{max_bytes / 2**20:.0f} MiB")
    try:
        if suffix == ".npy":
            if not data.startswith(_NPY_MAGIC):
                raise ValueError("it is not a NumPy .npy file (no NumPy header); save with numpy.save")
            obj = torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))
        elif suffix == ".safetensors":
            obj = _one_safetensor(data, filename)
        else:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"{filename} holds pickled Python objects, which are never loaded here; "
                             "save the matrix with numpy.save or torch.save(tensor)") from None
        raise ValueError(f"{filename}: {exc}") from None
    except Exception as exc:  # truncated zip, bad header, refused pickle, ...
        raise ValueError(f"{filename} is not a readable {suffix} matrix ({_reason(exc)})") from None
    if not isinstance(obj, torch.Tensor):
        raise ValueError(f"{filename}: expected a single tensor, found {type(obj).__name__}")
    if not (obj.dtype.is_floating_point or obj.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{filename}: expected real numbers, found dtype {obj.dtype}")
    return obj


def load_matrix(path: str, *, max_bytes: int = DEFAULT_MAX_MATRIX_BYTES) -> Tensor:
    """read_matrix on a file on disk."""
    p = check_suffix(path)
    if not p.is_file():
        raise ValueError(f"{path}: no such file")
    if p.stat().st_size > max_bytes:
        raise ValueError(f"{path} is {p.stat().st_size / 2**20:.1f} MiB; the limit for a matrix is "
                         f"{max_bytes / 2**20:.0f} MiB")
    return read_matrix(p.read_bytes(), str(path), max_bytes=max_bytes)


def _one_safetensor(data: bytes, filename: str) -> Tensor:
    from safetensors.torch import load as load_safetensors

    tensors = load_safetensors(data)
    if "covariance" in tensors:
        return tensors["covariance"]
    if len(tensors) != 1:
        raise ValueError(f"it holds {len(tensors)} tensors; name the covariance 'covariance'")
    return next(iter(tensors.values()))


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "weights_only" in str(exc) or "Unsupported global" in str(exc):
        return "it needs unpickling of Python objects, which is refused for safety"
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


@dataclass(frozen=True)
class CovarianceReport:
    """A finite symmetric k^2 x k^2 matrix and its extreme eigenvalues; psd says whether
    lambda_min >= -1e-9 * max |lambda| (covariance.is_psd's tolerance)."""

    matrix: Tensor
    kernel_size: int
    min_eigenvalue: float
    max_eigenvalue: float
    psd: bool

    def describe(self) -> str:
        k = self.kernel_size
        return (f"{k * k} × {k * k} covariance of {k} × {k} filters, eigenvalues "
                f"{self.min_eigenvalue:.3g} … {self.max_eigenvalue:.3g}")


def inspect_covariance(M) -> CovarianceReport:
    """Check M as a filter covariance: ValueError for a wrong shape, NaN/inf or asymmetry; a report
    (with psd False and the most negative eigenvalue) for a symmetric matrix that is not PSD."""
    M = torch.as_tensor(M)
    if M.dim() != 2:
        raise ValueError(f"a covariance is a 2-D k² × k² matrix; this one has shape {tuple(M.shape)}")
    S = covariance.validate_covariance(M)
    _check_total_variance(S)
    w = torch.linalg.eigvalsh(S)
    lo, hi = w.min().item(), w.max().item()
    return CovarianceReport(S, covariance.kernel_size_of(S), lo, hi, covariance.is_psd(S))


def _check_total_variance(S: Tensor) -> None:
    """trace(S) > 0, so the matrix can be scaled to a target variance (and its PSD projection,
    whose trace is at least trace(S), can too)."""
    if S.diagonal().sum() <= 0:
        raise ValueError(f"the variances (diagonal) of this matrix add up to {S.diagonal().sum().item():.3g}; "
                         "a filter covariance needs a positive total variance")


def projected(report: CovarianceReport) -> tuple[Tensor, float]:
    """The nearest PSD matrix to report.matrix (negative eigenvalues set to 0) and the relative
    Frobenius change ||P - S||_F / ||S||_F."""
    P = covariance.nearest_psd(report.matrix)
    change = torch.linalg.matrix_norm(P - report.matrix) / torch.linalg.matrix_norm(report.matrix)
    return P, float(change)


def covariance_bytes(S: torch.Tensor | list[torch.Tensor], fmt: str) -> bytes:
    """A flat covariance, or a list of them stacked (depth x k^2 x k^2), serialized as a NumPy .npy
    file or a torch .pt file (weights-only safe)."""
    if isinstance(S, list):
        S = torch.stack(S)
    buffer = io.BytesIO()
    if fmt == "npy":
        np.save(buffer, S.detach().cpu().numpy())
    elif fmt == "pt":
        torch.save(S.detach().cpu().contiguous(), buffer)
    else:
        raise ValueError(f"format must be 'npy' or 'pt', got {fmt!r}")
    return buffer.getvalue()
