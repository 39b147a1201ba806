"""NIFF, neural implicit frequency filters (seed 002: Grabinski, Keuper & Keuper, TMLR 2024): a
depthwise layer whose filters are as large as the feature map, given by a small MLP over frequencies.

For the integer frequencies (u, v) of an H x W map (FFT order, -H/2 <= u < H/2), two MLPs applied at
every point of the H x W x 2 grid of coordinates (the seed's 1 x 1 convolutions, as nn.Linear, so that
no other part of convcov mistakes them for conv layers), with SiLU between, 2 -> 8 -> 4 -> C or
2 -> 16 -> 128 -> 32 -> C (the seed's MLPs for small and for large networks: MLP_SIZES), give
channel c's complex response
    K[c, u, v] = MLP_re(u, v)[c] + i MLP_im(u, v)[c],
and the layer multiplies each channel's FFT by it (no bias, as in the seed):
    y[c] = Re(IFFT2(K[c] * FFT2(x[c]))).
For real x this is the circular convolution of x[c] with the real filter g[c] = Re(IFFT2(K[c]));
spatial_filters returns g the way nn.Conv2d's weights are read (cross-correlation, centre
(H // 2, W // 2)): w[c, a, b] = g[c, (H // 2 - a) mod H, (W // 2 - b) mod W], so that
    y[c, i, j] = sum_{a, b} w[c, a, b] x[c, (i + a - H // 2) mod H, (j + b - W // 2) mod W].
centre_window crops such filters to the k x k window that k x k depthwise filters have, for the same
covariance analyses; energy_outside is the share of their energy the crop leaves out.
Every channel's response is a linear map of the MLP's last hidden features (h of them) plus a
constant, so a layer's C filters span at most 2 h + 1 dimensions, whatever C and the map size.

Coordinates: the seed code (GeJulia/NIFF, niff_small.py, FreqConv_DW_fftifft) feeds its MLPs
arange(-H/2, H/2) along the fftshifted spectrum, which is the frequency u on an even axis and u - 1/2
on an odd one; coordinates="half" does the same, the default "integer" feeds u. On even (square: the
seed's grid is W x H) maps the layer is the seed's up to the order of the MLPs' two inputs (the seed's
first is the column frequency v) and a roll of the channels by C // 2 (its fftshift, given no dims,
shifts the channel axis too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .validation import whole_number

Tensor = torch.Tensor

#: The seed's hidden widths: "small" for light-weight networks, "big" for large ones.
MLP_SIZES = {"small": (8, 4), "big": (16, 128, 32)}


#: The frequency coordinates NIFFDepthwise can feed its MLPs: an axis of n points starts at -(n // 2)
#: ("integer": the frequencies) or at -n / 2 (the seed code's "half": half-integers on odd axes).
COORDINATES = ("integer", "half")


def _axis(n: int, coordinates: str, dtype, device) -> Tensor:
    """ifftshift(arange(s, s + n)), s = -(n // 2) ("integer": index i holds i for i < n/2, i - n after)
    or s = -n / 2 ("half")."""
    start = -(n // 2) if coordinates == "integer" else -n / 2
    return torch.fft.ifftshift(torch.arange(start, start + n, dtype=dtype, device=device))


def frequency_grid(height: int, width: int, coordinates: str = "integer", dtype=torch.float32, device=None) -> Tensor:
    """H x W x 2 coordinates (u, v) of the frequencies in FFT order (see _axis and COORDINATES)."""
    u, v = (_axis(n, coordinates, dtype, device) for n in (height, width))
    return torch.stack(torch.meshgrid(u, v, indexing="ij"), dim=-1)


def _mlp(widths: tuple[int, ...]) -> nn.Sequential:
    """Linear layers widths[0] -> widths[1] -> ... with SiLU between."""
    layers = []
    for n_in, n_out in zip(widths, widths[1:]):
        layers += [nn.Linear(n_in, n_out), nn.SiLU()]
    return nn.Sequential(*layers[:-1])


class NIFFDepthwise(nn.Module):
    """Depthwise filtering in the FFT domain with an MLP's complex response per channel, K[c, u, v]."""

    def __init__(self, channels: int, hidden: tuple[int, ...] = MLP_SIZES["small"], coordinates: str = "integer"):
        super().__init__()
        if coordinates not in COORDINATES:
            raise ValueError(f"coordinates must be one of {', '.join(COORDINATES)}, not {coordinates!r}")
        widths = (2, *(whole_number(h, "hidden width", 1) for h in hidden), whole_number(channels, "channels", 1))
        self.real = _mlp(widths)
        self.imag = _mlp(widths)
        self.coordinates = coordinates

    def frequency_response(self, height: int, width: int) -> Tensor:
        """K: C x H x W complex in FFT order, computed in the MLPs' dtype (float32, or float64 after
        .double()) outside any autocast."""
        weight = self.real[0].weight
        grid = frequency_grid(height, width, self.coordinates, weight.dtype, weight.device)
        with torch.autocast(grid.device.type, enabled=False):
            return torch.complex(self.real(grid), self.imag(grid)).permute(2, 0, 1)

    def spatial_filters(self, height: int, width: int) -> Tensor:
        """The C x H x W real filters the forward pass applies to H x W maps, centred at (H // 2, W // 2)."""
        g = torch.fft.ifft2(self.frequency_response(height, width)).real
        rows = (height // 2 - torch.arange(height, device=g.device)) % height
        cols = (width // 2 - torch.arange(width, device=g.device)) % width
        return g[:, rows][:, :, cols]

    def forward(self, x: Tensor) -> Tensor:
        response = self.frequency_response(*x.shape[-2:])
        with torch.autocast(x.device.type, enabled=False):  # FFTs over H, W of the N x H x W x C view
            pixels = x.to(response.real.dtype).permute(0, 2, 3, 1)
            y = torch.fft.ifft2(torch.fft.fft2(pixels, dim=(1, 2)) * response.permute(1, 2, 0), dim=(1, 2)).real
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        return y.permute(0, 3, 1, 2).to(x.dtype, memory_format=layout)  # x's: the convs after it are slow in another


def niff_layers(model: nn.Module) -> list[tuple[str, NIFFDepthwise]]:
    """Every NIFFDepthwise of a model, in order, with its name."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, NIFFDepthwise)]


def _window(height: int, width: int, k: int) -> tuple[slice, slice]:
    """Rows and columns of the k x k window around (H // 2, W // 2) in the map padded by k on every side."""
    top, left = height // 2 - k // 2 + k, width // 2 - k // 2 + k
    return slice(top, top + k), slice(left, left + k)


def centre_window(filters: Tensor, k: int) -> Tensor:
    """The k x k window of (..., H, W) centred filters around (H // 2, W // 2): offsets -(k // 2) to
    k - 1 - k // 2 on each axis, zero where the window reaches past the map (k > H)."""
    k = whole_number(k, "window size", 1)
    rows, cols = _window(*filters.shape[-2:], k)
    return F.pad(filters, (k, k, k, k))[..., rows, cols]


def energy_outside(filters: Tensor, k: int) -> float:
    """Share of the filters' energy outside centre_window(filters, k), over all of them:
    sum ||outside||^2 / sum ||filters||^2 (0 for all-zero filters; exactly 0 when the window holds the map)."""
    k = whole_number(k, "window size", 1)
    outside = F.pad(filters.detach().double(), (k, k, k, k))
    total = outside.pow(2).sum()
    outside[(..., *_window(*filters.shape[-2:], k))] = 0
    return float(outside.pow(2).sum() / total) if total > 0 else 0.0
