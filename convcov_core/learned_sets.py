"""Learned covariance sets: the per-layer filter covariances of a trained network (a saved run, a
checkpoint, or a file of depth x k^2 x k^2 matrices), the closed form that fits each layer, and
named sets saved for reuse as the `learned` init ($CONVCOV_HOME/covariance_sets/<name>.safetensors).

Fit: each layer's sigma is covariance.fit_sigma's (both scaled to unit mean diagonal) with its
Pearson r; fitted_schedule is the least-squares line through them over depth. offset_profile
averages a covariance over all pixel pairs at each offset (dy, dx).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from . import covariance, init, matrix_files, models, train
from .paths import convcov_home

Tensor = torch.Tensor


@dataclass
class LearnedSet:
    """Per-layer learned covariances (k^2 x k^2, float64) with their layer names and origin."""

    source: str
    layer_names: list
    covariances: list

    @property
    def kernel_size(self) -> int:
        return covariance.kernel_size_of(self.covariances[0])

    @property
    def depth(self) -> int:
        return len(self.covariances)


def learned_from_run(run: train.RunResult, name: str | None = None) -> LearnedSet:
    """The run's per-layer covariances; its source reads "<name or run #id>: model on dataset, ..."."""
    if not run.covariances:
        why = ("its filters were not finite at the end" if run.layer_names
               else f"{run.config.model} has no depthwise filters")
        raise ValueError(f"run {run.id} saved no covariances ({why})")
    names = run.layer_names or [f"layer {i + 1}" for i in range(len(run.covariances))]
    acc = f", test accuracy {run.final['test_acc']:.1f}%" if run.final.get("test_acc") is not None else ""
    return LearnedSet(f"{name or f'run #{run.id}'}: {run.config.model} on {run.config.dataset}, init {run.config.init}"
                      f"{' (frozen)' if run.config.freeze_filters else ''}{acc}",
                      list(names), [torch.as_tensor(S, dtype=torch.float64) for S in run.covariances])


def learned_from_state_dict(state: dict[str, Tensor], architecture: str, source: str) -> LearnedSet:
    """The checkpoint's model (models.model_from_state_dict: the architecture at the checkpoint's
    sizes, weights loaded strictly) and the centered covariance of each depthwise layer's filters."""
    model, layout = models.model_from_state_dict(state, architecture)
    layers = init.depthwise_convs(model)
    if not layers:
        raise ValueError(f"{layout['spec']} has no depthwise filters to analyse")
    k = layout["kernel_size"]
    return learned_from_layers(layers, f"{source} ({layout['spec']}, {k} × {k} filters)")


def learned_from_layers(layers: list, source: str) -> LearnedSet:
    """The centered covariance (covariance.empirical) of each (name, depthwise conv)'s filters, all
    of one k x k shape; ValueError when a filter is not finite."""
    weights = [conv.weight.detach().float() for _, conv in layers]
    if not all(torch.isfinite(w).all() for w in weights):
        raise ValueError("the depthwise filters contain NaN or infinite values")
    return LearnedSet(source, [name for name, _ in layers], [covariance.empirical(w) for w in weights])


def learned_from_checkpoint(data: bytes, filename: str, architecture: str, *,
                            max_bytes: int = models.DEFAULT_MAX_CHECKPOINT_BYTES) -> LearnedSet:
    """Learned covariances of an uploaded checkpoint (models.read_checkpoint_bytes: no code in the
    file runs). Every problem is a ValueError to show."""
    state = models.read_checkpoint_bytes(data, filename, max_bytes=max_bytes)
    return learned_from_state_dict(state, architecture, filename)


def covariances_from_matrix(stack: Tensor, origin: str) -> list[Tensor]:
    """Per-layer covariances from one tensor: depth x k^2 x k^2 (what `learned --out` and the Learned
    Covariances page's download write) or one k^2 x k^2 matrix. ValueError naming what is wrong."""
    stack = torch.as_tensor(stack).to(torch.float64)
    if stack.dim() == 2:
        stack = stack.unsqueeze(0)
    if stack.dim() != 3 or stack.shape[0] == 0:
        raise ValueError(f"{origin}: expected depth x k^2 x k^2 covariances (as `learned --out` writes) or "
                         f"one k^2 x k^2 matrix, got shape {tuple(stack.shape)}")
    return [covariance.validate_covariance(S) for S in stack]


def non_psd_layers(covariances: list[Tensor]) -> list[int]:
    """1-based layers that are not positive semi-definite: a transfer (and so the learned init)
    uses their nearest PSD matrix."""
    return [layer for layer, S in enumerate(covariances, start=1) if not covariance.is_psd(S)]


def learned_from_file_covariances(covariances: list[Tensor], filename: str) -> LearnedSet:
    """A LearnedSet of covariances read from a file, its layers named "layer 1", "layer 2", ..."""
    return LearnedSet(f"{filename} (a covariance file)", [f"layer {i + 1}" for i in range(len(covariances))],
                      covariances)


def learned_from_matrix_file(data: bytes, filename: str, *,
                             max_bytes: int = matrix_files.DEFAULT_MAX_MATRIX_BYTES) -> LearnedSet:
    """Covariances a user uploads as a file (.npy, .pt read weights-only, .safetensors; see
    covariances_from_matrix), one per layer."""
    stack = matrix_files.read_matrix(data, filename, max_bytes=max_bytes)
    return learned_from_file_covariances(covariances_from_matrix(stack, filename), filename)


def layer_fits(covariances: list[Tensor]) -> list[dict]:
    """Per layer: the Gaussian closed form's best sigma and its Pearson r (covariance.fit_sigma)."""
    fits = []
    for i, S in enumerate(covariances):
        sigma, r = covariance.fit_sigma(S)
        fits.append({"layer": i + 1, "sigma": sigma, "r": r})
    return fits


#: Fit quality (Pearson r) below which a layer's fitted sigma is not read as a bump's width.
STRUCTURED_MIN_R = 0.5


def most_structured_layer(fits: list[dict], min_r: float = STRUCTURED_MIN_R) -> int:
    """Index (from 0) of the layer with the widest bump that the closed form fits: the largest
    fitted sigma among layers with Pearson r >= min_r, else the best-fitting layer. The layer a
    page opens on (the first is often nearly a delta)."""
    if not fits:
        raise ValueError("no layers to choose from")
    fitting = [n for n, f in enumerate(fits) if f["r"] >= min_r]
    if not fitting:
        return max(range(len(fits)), key=lambda n: fits[n]["r"])
    return max(fitting, key=lambda n: fits[n]["sigma"])


def fitted_schedule(fits: list[dict]) -> tuple[float, float]:
    """(sigma_first, sigma_last) of the least-squares straight line through the fitted sigmas over
    the layers, floored at 0.1: what to give the Gaussian init to imitate these layers."""
    n = len(fits)
    if n == 0:
        raise ValueError("no layers to fit")
    ys = [f["sigma"] for f in fits]
    if n == 1:
        return max(ys[0], 0.1), max(ys[0], 0.1)
    xs = list(range(n))
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return max(my - slope * mx, 0.1), max(my + slope * (n - 1 - mx), 0.1)


@functools.lru_cache(maxsize=1)
def example_schedule() -> tuple[float, float, int]:
    """(sigma_first, sigma_last, k) fitted from the bundled example's learned covariances: the
    straight line through its layers' fitted σ (fitted_schedule; what `convcov learned` prints) at its
    kernel size k. Some seconds, once per process."""
    from .examples import load_example

    run = load_example()
    first, last = fitted_schedule(layer_fits(run.covariances))
    return first, last, run.config.kernel_size


def example_sigmas(kernel_size: int) -> tuple[float, float]:
    """The example's fitted schedule for k x k filters, to 2 decimals: each σ times (k - 1) / (k_ex - 1),
    the stretch covariance.resize gives learned covariances moved to another k (aligned corners),
    floored at 0.1 as fitted_schedule floors it."""
    first, last, k_example = example_schedule()
    scale = (kernel_size - 1) / (k_example - 1)
    return round(max(first * scale, 0.1), 2), round(max(last * scale, 0.1), 2)


def closed_form_schedule(kernel_size: int, depth: int) -> list[float]:
    """The Gaussian init's default sigma per layer: init.default_sigmas(k) spread over the depth."""
    return covariance.depth_schedule(*init.default_sigmas(kernel_size), depth)


def offset_profile(S: Tensor) -> Tensor:
    """Average covariance of pixel pairs at each offset, divided by the mean variance:
    P[di + k - 1, dj + k - 1] = mean over (i, j) of B[i, j, i + di, j + dj] / mean(diag S), for
    offsets -k < di, dj < k, averaged over the pixels (i, j) where (i + di, j + dj) is in the filter.
    For the Gaussian closed form it is exp(-(di^2 + dj^2) / 2 sigma^2) exactly; for a learned
    covariance it is the smooth bump the tiled view shows once per pixel, with the noise averaged."""
    S = covariance.normalize_trace(torch.as_tensor(S, dtype=torch.float64))
    k = covariance.kernel_size_of(S)
    B = covariance.to_blocks(S)
    idx = torch.arange(k)
    out = torch.zeros(2 * k - 1, 2 * k - 1, dtype=torch.float64)
    for di in range(-k + 1, k):
        rows = idx[(idx + di >= 0) & (idx + di < k)]
        for dj in range(-k + 1, k):
            cols = idx[(idx + dj >= 0) & (idx + dj < k)]
            i, j = torch.meshgrid(rows, cols, indexing="ij")
            out[di + k - 1, dj + k - 1] = B[i, j, i + di, j + dj].mean()
    return out


def closed_form_beside(S: Tensor, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
    """(learned, closed form, learned - closed form), both scaled to unit mean diagonal."""
    learned = covariance.normalize_trace(torch.as_tensor(S, dtype=torch.float64))
    closed = covariance.gaussian(covariance.kernel_size_of(learned), sigma)
    return learned, closed, learned - closed


_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,59}")


@dataclass(frozen=True)
class CovarianceSetInfo:
    name: str
    kernel_size: int
    depth: int
    source: str


def covariance_sets_dir() -> Path:
    return convcov_home() / "covariance_sets"


def _set_path(name: str) -> Path:
    name = str(name).strip()
    if not _SET_NAME.fullmatch(name):
        raise ValueError("a covariance set name is 1-60 letters, digits, spaces, '.', '_' or '-', "
                         f"starting with a letter or digit; got {name!r}")
    return covariance_sets_dir() / f"{name}.safetensors"


def save_covariance_set(name: str, covariances: list[Tensor], *, source: str) -> Path:
    """Save per-layer covariances (one k^2 x k^2 matrix per layer) as safetensors with their origin;
    an existing set of that name is replaced."""
    from safetensors.torch import save_file

    if not covariances:
        raise ValueError("no covariances to save")
    checked = [covariance.validate_covariance(torch.as_tensor(S, dtype=torch.float64)) for S in covariances]
    path = _set_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"layer_{i:03d}": S.contiguous() for i, S in enumerate(checked)}
    meta = {"source": source, "kernel_size": str(covariance.kernel_size_of(checked[0])),
            "depth": str(len(checked))}
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial), metadata=meta)
    partial.replace(path)
    return path


def list_covariance_sets() -> list[CovarianceSetInfo]:
    """Saved covariance sets, by name; unreadable files are skipped."""
    from safetensors import safe_open

    found = []
    folder = covariance_sets_dir()
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            found.append(CovarianceSetInfo(path.stem, int(meta["kernel_size"]), int(meta["depth"]),
                                           meta.get("source", "")))
        except Exception:  # a damaged or foreign file in the folder is not offered
            continue
    return found


def load_covariance_set(name: str) -> list[Tensor]:
    """The per-layer covariances of a saved set, first layer first."""
    from safetensors.torch import load_file

    path = _set_path(name)
    if not path.is_file():
        raise ValueError(f"no covariance set named {name!r}")
    tensors = load_file(str(path))
    return [covariance.validate_covariance(tensors[key].to(torch.float64)) for key in sorted(tensors)]
