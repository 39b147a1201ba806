"""What the app pages compute, kept free of streamlit so it can be cached, tested and reused.

Pages call these functions with widget values and hand the results to `convcov_core.plots`.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
import torch

from . import analysis, covariance, init

#: Sigma choices for the log-scale slider, 0.1 to 10 (roughly even steps in log sigma).
SIGMA_OPTIONS = (0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0,
                 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0)

#: How the gallery names each init scheme.
SCHEME_LABELS = {
    "default": "PyTorch default (uniform)",
    "kaiming_normal": "Kaiming normal",
    "orthogonal": "Orthogonal",
    "gaussian": "Gaussian covariance",
    "learned": "Learned covariance",
}

DEFAULT_MAX_KERNEL = 51
#: Seconds between refreshes of a running job's progress and live curves (CONVCOV_REFRESH_S). With
#: the browser on the same 2-core machine, refreshing every second made the Training Lab's runs
#: 1.3-1.5x slower than every 2 s (benchmarks/served_training.py).
DEFAULT_REFRESH_S = 2.0


def max_kernel_size(environ=os.environ) -> int:
    """Largest kernel size the explorer offers: $CONVCOV_MAX_KERNEL (odd, >= 3), default 51."""
    raw = environ.get("CONVCOV_MAX_KERNEL", "").strip()
    if not raw:
        return DEFAULT_MAX_KERNEL
    if not raw.isdigit() or int(raw) < 3 or int(raw) % 2 == 0:
        raise ValueError(f"CONVCOV_MAX_KERNEL must be an odd whole number >= 3, got {raw!r}; "
                         "unset it to use the default of 51")
    return int(raw)


def refresh_seconds(environ=os.environ) -> float:
    """Seconds between progress refreshes of a running job: $CONVCOV_REFRESH_S (0.5 to 60),
    default DEFAULT_REFRESH_S."""
    raw = environ.get("CONVCOV_REFRESH_S", "").strip()
    if not raw:
        return DEFAULT_REFRESH_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.5 <= value <= 60:
        raise ValueError(f"CONVCOV_REFRESH_S must be a number of seconds from 0.5 to 60, got {raw!r}; "
                         f"unset it to use the default of {DEFAULT_REFRESH_S:g}")
    return value


def scheme_names(include_learned: bool) -> list[str]:
    """The init schemes a gallery can show, in registry order ("learned" only when available)."""
    return [name for name in init.SCHEMES if name != "learned" or include_learned]


def scheme_label(name: str) -> str:
    return SCHEME_LABELS.get(name, init.SCHEMES[name].description)


# ---------------------------------------------------------------------------------------------
# Covariance explorer
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Filter gallery
# ---------------------------------------------------------------------------------------------


def target_covariance(scheme: str, kernel_size: int, *, sigma: float | None = None,
                      learned: torch.Tensor | None = None) -> torch.Tensor:
    """The covariance a scheme's filters have at the default variance v = 1 / (3 k^2).

    i.i.d. and orthogonal schemes: v I. Covariance schemes: v S / mean(diag S), with S the Gaussian
    closed form or the learned covariance transferred to kernel size k.
    """
    k = covariance.check_kernel_size(kernel_size)
    v = init.default_variance(k)
    source = init.get_scheme(scheme).covariance
    if source == "gaussian":
        return v * covariance.gaussian(k, sigma if sigma is not None else init.default_sigmas(k)[0])
    if source == "learned":
        if learned is None:
            raise ValueError("the learned scheme needs a learned covariance")
        return v * covariance.normalize_trace(covariance.transfer([learned], k, 1)[0])
    return v * torch.eye(k * k, dtype=torch.float64)


@dataclass
class GalleryPanel:
    """Everything one gallery column shows for one scheme."""

    filters: torch.Tensor  # (n_show, k, k)
    empirical: torch.Tensor  # k^2 x k^2, from n_sample filters
    target: torch.Tensor  # k^2 x k^2
    relative_error: float  # ||empirical - target||_F / ||target||_F
    spectrum: torch.Tensor  # mean |FFT| over up to SPECTRUM_FILTERS filters, size x size


SPECTRUM_FILTERS = 256
SPECTRUM_SIZE = 64


def gallery_panel(scheme: str, kernel_size: int, n_show: int, n_sample: int, seed: int, *,
                  sigma: float | None = None, learned: torch.Tensor | None = None) -> GalleryPanel:
    """Draw n_show filters to look at and n_sample more to estimate the covariance, from one seed."""
    if n_sample < 2:
        raise ValueError(f"the covariance sample needs at least 2 filters, got {n_sample}")
    generator = torch.Generator().manual_seed(int(seed))
    draw = dict(sigma=sigma, covariance=learned, generator=generator)
    shown = init.sample_scheme(scheme, kernel_size, n_show, **draw)
    sample = init.sample_scheme(scheme, kernel_size, n_sample, **draw)
    target = target_covariance(scheme, kernel_size, sigma=sigma, learned=learned)
    estimate = covariance.empirical(sample)
    error = float(torch.linalg.matrix_norm(estimate - target) / torch.linalg.matrix_norm(target))
    spectrum = analysis.spectrum(sample[:SPECTRUM_FILTERS], size=max(SPECTRUM_SIZE, kernel_size))
    return GalleryPanel(shown, estimate, target, error, spectrum)


def run_label(summary) -> str:
    """How every page lists a saved run (a runs.RunSummary), e.g.
    "#1 example: convmixer-64/8 on mnist5k, k = 9, default init, test 98.4%"."""
    name = f" {summary.name}:" if summary.name else ""
    init_name = summary.variant or summary.init + (" frozen" if summary.freeze_filters else "")
    acc = f", test {summary.test_acc:.1f}%" if summary.test_acc is not None else ""
    k = f", k = {summary.kernel_size}" if summary.kernel_size is not None else ""
    return f"#{summary.id}{name} {summary.model} on {summary.dataset}{k}, {init_name} init{acc}"


def runs_with_learned_covariances() -> list:
    """Summaries of stored runs that trained their depthwise filters and saved their covariances
    (a run with frozen filters ends with its init's covariance: nothing learned); [] when the run
    store (convcov_core.runs and what it imports) is not installed."""
    try:
        from . import runs
    except ImportError:
        return []
    return [s for s in runs.RunStore().list() if s.has_covariances and not s.freeze_filters]


def learned_covariances(run_id: int) -> list[torch.Tensor]:
    """The per-layer covariances saved with run `run_id` (first layer first)."""
    from . import runs

    result = runs.RunStore().get(run_id)
    if not result.covariances:
        raise ValueError(f"run {run_id} saved no covariances")
    return [torch.as_tensor(c, dtype=torch.float64) for c in result.covariances]
