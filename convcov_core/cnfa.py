"""The Convolutional Neural Feature Ansatz check (seed 001) on a model trained and the same model at
its initialization: per conv layer r = pearson(M, W^T W), M the patch-AGOP of the model's outputs;
the ansatz says r is high after training and is a consequence of training, so the model at init is
the control, and r(W^T W at init, W^T W trained) says how far training moved the weights. Also the
top eigenvectors of M as filters, and ||M^(1/2) patch|| feature maps on a test image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import analysis, data, train
from .model_pairs import ModelPair
from .validation import whole_number

Tensor = torch.Tensor


#: Pictures from scikit-image for the feature maps (grayscale luminance, resized).
NATURAL_IMAGES = data.TEXTURE_PICTURES


def analysis_images(config: train.TrainConfig, n: int) -> Tensor:
    """The first n test images of the config's dataset (N, C, H, W), normalized as in training."""
    n = whole_number(n, "number of images", 1)
    _, _, test_x, _, _ = train.load_training_data(config)
    return test_x[:n]


@dataclass
class CNFAComparison:
    """cnfa_report of the trained model and of the same model at init (same layers, order)."""

    trained: list[analysis.CNFALayer]
    initial: list[analysis.CNFALayer]
    n_images: int
    outputs: str | int

    def table(self) -> list[dict]:
        """One row per layer: r(AGOP, CNFM) trained and at init, and how far training moved the CNFM
        (Pearson r between the CNFM at init and after training; the seed's control)."""
        rows = []
        for t, i in zip(self.trained, self.initial):
            rows.append({
                "layer": t.name, "kind": t.kind, "filters": f"{t.out_channels} x {t.channels} x {t.kernel_size}²",
                "matrix": t.matrix_size, "r trained": t.r, "r at init": i.r,
                "r(CNFM init, CNFM trained)": analysis.pearson(i.cnfm, t.cnfm),
            })
        return rows

    def first_spatial_layer(self) -> str:
        """The first layer with k x k filters, k >= 3 (a ConvMixer starts with a p x p patch
        embedding), else the first layer."""
        for row in self.trained:
            if isinstance(row.kernel_size, int) and row.kernel_size >= 3:
                return row.name
        return self.trained[0].name

    def row(self, layer: str, which: str = "trained") -> analysis.CNFALayer:
        rows = self.trained if which == "trained" else self.initial
        for row in rows:
            if row.name == layer:
                return row
        raise ValueError(f"no layer {layer!r}; layers: {[r.name for r in rows]}")


def compare_cnfa(pair: ModelPair, inputs: Tensor, *, outputs="all", batch_size: int = 64,
                 progress: Callable[[float], None] | None = None) -> CNFAComparison:
    """cnfa_report of the trained model and of the model at init on the same inputs.

    progress(fraction done in [0, 1]) after every batch of either model.
    """
    def relay(offset: float):
        return None if progress is None else (lambda done, total: progress(offset + 0.5 * done / total))

    trained = analysis.cnfa_report(pair.trained, inputs, outputs=outputs, batch_size=batch_size,
                                   progress=relay(0.0))
    initial = analysis.cnfa_report(pair.initial, inputs, outputs=outputs, batch_size=batch_size,
                                   progress=relay(0.5))
    return CNFAComparison(trained, initial, int(inputs.shape[0]), outputs)


def estimate_seconds(model: nn.Module, inputs: Tensor, *, outputs="all", probe: int = 16) -> float:
    """Seconds compare_cnfa should take for a pair of models shaped like `model` on `inputs`:
    analysis.cnfa_report of `model` on the first `probe` inputs, timed and scaled to all of them,
    twice (the trained model and the one at init)."""
    import time

    n = int(inputs.shape[0])
    started = time.perf_counter()
    analysis.cnfa_report(model, inputs[:probe], outputs=outputs)
    return 2 * (time.perf_counter() - started) * max(1.0, n / min(n, probe))


def spatial_matrix(M: Tensor, in_chans: int, kernel_size: int) -> Tensor:
    """The k^2 x k^2 spatial part of a (c k^2) x (c k^2) patch matrix: the mean of its c diagonal
    channel blocks (M itself when c = 1)."""
    side = kernel_size * kernel_size
    M = torch.as_tensor(M, dtype=torch.float64)
    if M.shape != (in_chans * side, in_chans * side):
        raise ValueError(f"M is {tuple(M.shape)}, expected {in_chans * side} x {in_chans * side}")
    blocks = M.reshape(in_chans, side, in_chans, side)
    return blocks.diagonal(dim1=0, dim2=2).mean(dim=-1)


def eigenfilters(layer: analysis.CNFALayer, matrix: str = "agop", n: int = 8) -> tuple[Tensor, Tensor]:
    """patch_eigenfilters of a layer's AGOP or CNFM."""
    if matrix not in ("agop", "cnfm"):
        raise ValueError(f"matrix must be 'agop' or 'cnfm', got {matrix!r}")
    if not isinstance(layer.kernel_size, int):
        raise ValueError(f"layer {layer.name} has a non-square kernel {layer.kernel_size}; eigenfilters need k x k")
    return patch_eigenfilters(getattr(layer, matrix), layer.channels, layer.kernel_size, n)


def patch_eigenfilters(M: Tensor, channels: int, kernel_size: int, n: int = 8) -> tuple[Tensor, Tensor]:
    """(share of the trace held by each eigenvalue, top-n eigenvectors as (n, k, k) filters) of a patch
    matrix M over `channels` channels of k x k patches; for several channels, of its spatial part
    (spatial_matrix): what M looks for in every channel's k x k patch."""
    M = spatial_matrix(M, channels, kernel_size)
    values, vectors = analysis.top_eigenvectors(M, min(n, kernel_size * kernel_size), kernel_size)
    trace = float(torch.trace(M))
    shares = values / trace if trace > 0 else torch.zeros_like(values)
    return shares, vectors[:, 0]


def natural_images(names, size: int, info: data.DatasetInfo) -> Tensor:
    """scikit-image pictures (grayscale, centre-cropped square, resized to size x size) normalized
    with the dataset's mean and std, on as many channels as the dataset has: (N, C, size, size)."""
    pictures = data.texture_pictures(color=False)
    size = whole_number(size, "image size", 8)
    out = []
    for name in names:
        if name not in pictures:
            raise ValueError(f"unknown picture {name!r}; choose from {', '.join(pictures)}")
        picture = torch.from_numpy(pictures[name])
        side = min(picture.shape)
        top, left = (picture.shape[0] - side) // 2, (picture.shape[1] - side) // 2
        square = picture[top:top + side, left:left + side][None, None]
        out.append(F.interpolate(square, size=(size, size), mode="area")[0])
    images = torch.stack(out).repeat(1, info.in_chans, 1, 1)
    mean = torch.tensor(info.mean, dtype=images.dtype)[None, :, None, None]
    std = torch.tensor(info.std, dtype=images.dtype)[None, :, None, None]
    return (images - mean) / std


def layer_feature_maps(model: nn.Module, matrices: dict[str, Tensor], image: Tensor) -> dict[str, Tensor]:
    """||M^(1/2) patch|| maps (analysis.feature_map) of one image (C, H, W) for each named conv layer,
    M = matrices[name], each applied to that layer's own input in one forward pass of the model."""
    convs = dict(analysis.conv_layers(model))
    missing = [name for name in matrices if name not in convs]
    if missing:
        raise ValueError(f"no conv layer {missing}; conv layers: {list(convs)}")
    inputs: dict[str, Tensor] = {}
    hooks = [convs[name].register_forward_pre_hook(
        lambda module, args, name=name: inputs.__setitem__(name, args[0].detach()))
        for name in matrices]
    was_training = model.training
    try:
        model.eval()
        weight = next(iter(convs.values())).weight
        with torch.no_grad():
            model(torch.as_tensor(image)[None].to(device=weight.device, dtype=weight.dtype))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return {name: analysis.feature_map(M, inputs[name][0], convs[name]) for name, M in matrices.items()}


def to_pixels(image: Tensor, info: data.DatasetInfo) -> np.ndarray:
    """A normalized (C, H, W) image back on its [0, 1]-ish pixel scale, as an H x W array (channel
    mean) for display."""
    mean = torch.tensor(info.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(info.std, dtype=torch.float64)[:, None, None]
    return (torch.as_tensor(image, dtype=torch.float64) * std + mean).mean(dim=0).numpy()
