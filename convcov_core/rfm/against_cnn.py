"""A ConvRFM against a CNN's first conv layer: fitted on the CNN's data with the layer's patch size,
its M correlated with the layer's W^T W and patch-AGOP and with the closed-form Gaussian covariance,
its eigenvectors as filters and its ||M^(1/2) patch|| maps.
"""

from __future__ import annotations

import torch

from .. import analysis, cnfa, covariance, train
from ..validation import whole_number
from .kernel import transformed_maps
from .machines import ConvRFM

Tensor = torch.Tensor


def fit_on(config: train.TrainConfig, n_images: int, patch_size: int, iterations: int = 3) -> tuple[ConvRFM, float]:
    """(ConvRFM fitted on n_images training images of the config's dataset drawn with its seed (mnist5k
    lists its digits by class), its test accuracy %)."""
    n_images = whole_number(n_images, "number of images", 3)
    train_x, train_y, test_x, test_y, _ = train.load_training_data(config)
    chosen = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(config.seed))[:n_images]
    machine = ConvRFM(patch_size, iterations, seed=config.seed).fit(train_x[chosen], train_y[chosen])
    return machine, machine.score(test_x, test_y)


def _channels(machine: ConvRFM) -> int:
    """The channels of the patches M runs over."""
    return machine.M.shape[0] // machine.patch_size ** 2


def eigenfilters(machine: ConvRFM, n: int = 8) -> tuple[Tensor, Tensor]:
    """(share of the trace per eigenvalue, top-n eigenvectors of M as (n, q, q) filters): cnfa.patch_eigenfilters."""
    return cnfa.patch_eigenfilters(machine.M, _channels(machine), machine.patch_size, n)


def correlations(machine: ConvRFM, layer: analysis.CNFALayer) -> list[dict]:
    """Pearson r of ConvRFM's M with the CNN layer's W^T W and patch-AGOP (a layer of the same patch
    size) and with the closed-form Gaussian covariance at its fitted sigma (of M's spatial part)."""
    if layer.agop.shape != machine.M.shape:
        raise ValueError(f"layer {layer.name} reads {tuple(layer.agop.shape)} patches, ConvRFM "
                         f"{tuple(machine.M.shape)}")
    sigma, r = covariance.fit_sigma(cnfa.spatial_matrix(machine.M, _channels(machine), machine.patch_size))
    return [{"against": f"CNN WᵀW ({layer.name})", "r": analysis.pearson(machine.M, layer.cnfm)},
            {"against": f"CNN patch-AGOP ({layer.name})", "r": analysis.pearson(machine.M, layer.agop)},
            {"against": f"closed-form Gaussian (fitted σ = {sigma:.2f})", "r": r}]


def feature_map(machine: ConvRFM, image: Tensor) -> Tensor:
    """||M^(1/2) x_p|| = ||R^T x_p|| at every position p of one image (c, H, W): (H, W) float64."""
    maps = transformed_maps(torch.as_tensor(image, dtype=torch.float32)[None], machine.metric)
    return maps[0].double().norm(dim=0)
