"""All-pass depthwise filters: orthogonal circular convolutions made by the Cayley transform, as in
Trockman & Kolter, "Orthogonalizing Convolutional Layers with the Cayley Transform" (ICLR 2021), for
one channel, and their window on a kernel.

For a real kh x kw filter V, A = V - V^T (V^T(p) = V(-p), the adjoint conv) is skew: its DFT is
2i Im V(f) = i s(f). The Cayley transform Q = (I - A)(I + A)^-1 has Q(f) = (1 - i s(f)) / (1 + i s(f)),
|Q(f)| = 1 at every frequency, so the circular conv by Q is orthogonal (Parseval: ||Q||^2 = 1). Q is
not supported on the kernel (it holds A^2, A^3, ...): cutting it to the kernel loses energy.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

#: Q is orthogonal as a circular conv on a (GRID kh) x (GRID kw) map, about the size of the maps the
#: paper's large kernels see. A larger map changes the energy a k x k window misses by 0.001
#: (0.174 at 2k, 0.175 at 4k and 8k, k = 9, 50,000 filters).
GRID = 2


def taps(shape: tuple[int, int], grid) -> tuple[Tensor, Tensor]:
    """Rows and columns of a map that hold a kh x kw kernel's taps, offsets -(k // 2)..k // 2 from the
    origin at [0, 0] (circular indexing): map[rows][:, cols] is the kernel."""
    return tuple((torch.arange(k) - k // 2) % size for k, size in zip(shape, grid))


def cayley(V: Tensor) -> Tensor:
    """The all-pass filters Q of kernels V (n, kh, kw): (n, GRID kh, GRID kw) float64, origin at [0, 0]."""
    shape = tuple(V.shape[1:])
    grid = (GRID * shape[0], GRID * shape[1])
    rows, cols = taps(shape, grid)
    padded = torch.zeros(len(V), *grid, dtype=torch.float64)
    padded[:, rows[:, None], cols] = V.double()
    s = 2 * torch.fft.rfft2(padded).imag
    Q = torch.complex(1 - s * s, -2 * s) / (1 + s * s)  # (1 - i s)^2 / |1 + i s|^2
    return torch.fft.irfft2(Q, s=grid)


def kernel_window(full: Tensor, shape: tuple[int, int]) -> Tensor:
    """The kh x kw window around the origin of filters on a map, (n, kh, kw)."""
    rows, cols = taps(shape, full.shape[1:])
    return full[:, rows[:, None], cols]
