"""How far filters reach, in frequency and in space (seed 002's frequency view).

spectrum: the mean |FFT2| of a stack of filters zero-padded to size x size, centred; radial_profile:
its mean on rings of integer radius r (r / size cycles/pixel); half_max_frequency: where that profile
falls to half its peak; effective_size: the side of the smallest centred square holding a given share
of each filter's energy.
"""

from __future__ import annotations

import torch

from .validation import whole_number


def _filter_stack(filters) -> torch.Tensor:
    """(N, kh, kw) float64 from (N, kh, kw), (C, 1, kh, kw) or one (kh, kw) filter."""
    f = torch.as_tensor(filters).detach().to(device="cpu", dtype=torch.float64)
    if f.dim() == 4 and f.shape[1] == 1:
        f = f[:, 0]
    elif f.dim() == 2:
        f = f[None]
    if f.dim() != 3 or f.shape[0] == 0 or f.shape[1] == 0 or f.shape[2] == 0:
        shape = tuple(torch.as_tensor(filters).shape)
        raise ValueError(f"filters must be (N, k, k), (C, 1, k, k) or one (k, k) filter, got {shape}")
    if not torch.isfinite(f).all():
        raise ValueError("filters contain NaN or infinite values")
    return f


def spectrum(filters, size: int = 64) -> torch.Tensor:
    """Mean |FFT2| of the filters zero-padded to size x size, fftshifted (DC at [size//2, size//2]).

    Computed in float32 (a plot's precision) from the half spectrum that rfft2 gives:
    real filters have |F(u, v)| = |F(-u, -v)|, which fills in the other half. Returns float64.
    """
    f = _filter_stack(filters)
    size = whole_number(size, "size (the FFT side)", max(f.shape[1:]))
    half = torch.fft.rfft2(f.to(torch.float32), s=(size, size)).abs().mean(dim=0)
    mirrored = half.flip(0).roll(1, dims=0)[:, 1:size - size // 2].flip(1)  # [u, v] = half[-u, -v]
    return torch.fft.fftshift(torch.cat([half, mirrored], dim=1)).to(torch.float64)


def radial_profile(spec) -> tuple[torch.Tensor, torch.Tensor]:
    """(radii, mean value on each ring) of a centred spectrum, for integer radii 0..min(H, W)//2.

    Ring r holds the pixels whose distance to the centre [H//2, W//2] rounds to r; radii stop at
    the axis Nyquist frequency min(H, W)//2, beyond which rings are cut by the image border.
    """
    spec = torch.as_tensor(spec, dtype=torch.float64)
    if spec.dim() != 2 or min(spec.shape) < 2:
        raise ValueError(f"expected a 2-D spectrum of at least 2 x 2, got shape {tuple(spec.shape)}")
    height, width = spec.shape
    rows = torch.arange(height, dtype=torch.float64) - height // 2
    cols = torch.arange(width, dtype=torch.float64) - width // 2
    radius = torch.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2).round().long().flatten()
    r_max = min(height, width) // 2
    inside = radius <= r_max
    sums = torch.bincount(radius[inside], weights=spec.flatten()[inside], minlength=r_max + 1)
    counts = torch.bincount(radius[inside], minlength=r_max + 1)
    return torch.arange(r_max + 1), sums / counts


def half_max_frequency(profile, size: int) -> float | None:
    """Frequency (cycles/pixel) at which a radial profile (ring r at r / size cycles/pixel, as
    radial_profile gives it for a size x size spectrum) first falls below half its maximum after
    that maximum, interpolated linearly between rings; None when it never does (white noise)."""
    p = torch.as_tensor(profile, dtype=torch.float64).flatten()
    size = whole_number(size, "size", 2)
    if p.numel() < 2 or not torch.isfinite(p).all() or p.max() <= 0:
        raise ValueError("expected a finite radial profile of at least 2 rings with a positive maximum")
    peak = int(p.argmax())
    half = 0.5 * float(p[peak])
    below = (p[peak:] < half).nonzero()
    if not below.numel():
        return None
    r = peak + int(below[0])
    before, after = float(p[r - 1]), float(p[r])
    return (r - 1 + (before - half) / (before - after)) / size


def effective_size(filters, energy: float = 0.9) -> torch.Tensor:
    """Per filter: side s of the smallest centred s x s square (s = 1, 3, ..., k) holding at least
    `energy` of the filter's energy (sum of squares). Returns an int64 tensor (N,).

    A centred delta gives 1; an all-zero filter gives 1. A constant k x k filter holds s^2/k^2 of
    its energy in the centred s x s square, so at energy=0.9 it gives k for k <= 37 and k - 2 from
    k = 39 on ((k-2)^2/k^2 >= 0.9 there). Needs square filters of odd size.
    """
    try:
        share = None if isinstance(energy, bool) else float(energy)
    except (TypeError, ValueError):
        share = None
    if share is None or not 0 < share <= 1:
        raise ValueError(f"energy must be a share in (0, 1], got {energy!r}")
    f = _filter_stack(filters)
    k = f.shape[1]
    if f.shape[2] != k or k % 2 == 0:
        raise ValueError(
            f"effective_size needs square filters of odd size, got {f.shape[1]} x {f.shape[2]}"
        )
    squared = f.pow(2)
    centre = k // 2
    sides = list(range(1, k + 1, 2))
    window = [slice(centre - s // 2, centre + s // 2 + 1) for s in sides]
    held = torch.stack([squared[:, w, w].sum(dim=(1, 2)) for w in window], dim=1)
    enough = held >= share * held[:, -1:]  # the s = k column is the total, so it always qualifies
    first = enough.to(torch.int64).argmax(dim=1)
    return torch.tensor(sides, dtype=torch.int64)[first]
