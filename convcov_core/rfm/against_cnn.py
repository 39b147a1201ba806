"""A ConvRFM next to a CNN (what the Feature Ansatz page shows): the measured noise sweep, a ConvRFM
fitted on the CNN's data with the CNN's first-layer patch size, its M against the CNN's first-layer
W^T W and patch-AGOP and against the closed-form Gaussian covariance, its eigenvectors as filters and
its ||M^(1/2) patch|| maps.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import analysis, cnfa, covariance, train
from ..reproduce.files import REPO_REPORTS
from ..validation import whole_number
from .kernel import transformed_maps
from .machines import ConvRFM

Tensor = torch.Tensor

#: The sweep behind docs/results.md: `convcov rfm --json reports/rfm/noisy-bars.json`.
MEASURED = REPO_REPORTS / "rfm" / "noisy-bars.json"


def measured_sweep(path: Path | None = None) -> dict | None:
    """The document `convcov rfm --json` wrote (NoiseSweep.to_dict) at `path` (default MEASURED), or None
    when the file is missing."""
    path = Path(path or MEASURED)
    return json.loads(path.read_text()) if path.is_file() else None


def fit_on(config: train.TrainConfig, n_images: int, patch_size: int, iterations: int = 3) -> tuple[ConvRFM, float]:
    """(ConvRFM fitted on n_images training images of the config's dataset drawn with its seed (mnist5k
    lists its digits by class), its test accuracy %)."""
    n_images = whole_number(n_images, "number of images", 3)
    train_x, train_y, test_x, test_y, _ = train.load_training_data(config)
    chosen = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(config.seed))[:n_images]
    machine = ConvRFM(patch_size, iterations, seed=config.seed).fit(train_x[chosen], train_y[chosen])
    return machine, machine.score(test_x, test_y)


def _as_row(machine: ConvRFM) -> dict:
    """The ConvRFM's M in the shape of a cnfa_report row (a regular conv's AGOP), for cnfa.eigenfilters."""
    channels = machine.M.shape[0] // machine.patch_size ** 2
    return {"name": "ConvRFM", "kind": "regular", "kernel_size": machine.patch_size, "in_channels": channels,
            "agop": machine.M}


def eigenfilters(machine: ConvRFM, n: int = 8) -> tuple[Tensor, Tensor]:
    """(share of the trace per eigenvalue, top-n eigenvectors of M as (n, q, q) filters): cnfa.eigenfilters."""
    return cnfa.eigenfilters(_as_row(machine), "agop", n)


def correlations(machine: ConvRFM, cnn_row: dict) -> list[dict]:
    """Pearson r of ConvRFM's M with the CNN layer's W^T W and patch-AGOP (a cnfa_report row of the same
    patch size) and with the closed-form Gaussian covariance at its fitted sigma (of M's spatial part)."""
    if cnn_row["agop"].shape != machine.M.shape:
        raise ValueError(f"layer {cnn_row['name']} reads {tuple(cnn_row['agop'].shape)} patches, ConvRFM "
                         f"{tuple(machine.M.shape)}")
    row = _as_row(machine)
    sigma, r = covariance.fit_sigma(cnfa.spatial_matrix(machine.M, row["in_channels"], machine.patch_size))
    cnn = cnn_row["name"]
    return [{"against": f"CNN WᵀW ({cnn})", "r": analysis.pearson(machine.M, cnn_row["cnfm"])},
            {"against": f"CNN patch-AGOP ({cnn})", "r": analysis.pearson(machine.M, cnn_row["agop"])},
            {"against": f"closed-form Gaussian (fitted σ = {sigma:.2f})", "r": r}]


def feature_map(machine: ConvRFM, image: Tensor) -> Tensor:
    """||M^(1/2) x_p|| = ||R^T x_p|| at every position p of one image (c, H, W): (H, W) float64."""
    maps = transformed_maps(torch.as_tensor(image, dtype=torch.float32)[None], machine.metric)
    return maps[0].double().norm(dim=0)
