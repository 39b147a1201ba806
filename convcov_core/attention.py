"""The attention analogue of the filter covariance: per head, the weight products W_q W_k^T and
W_v W_proj (mimetic.head_products) of a saved Vision Transformer run, at its init (rebuilt from the
run's config and seed, so exactly the weights it started from) and after training (its stored
weights), with two numbers per product: the diagonal's mean and the off-diagonal entries' std times
sqrt(d), the beta and alpha of a target alpha Z / sqrt(d) + beta I.

What mimetic init (mimetic.py) sets, in these two numbers: a head's W_q W_k^T is the best rank-k
approximation of its own target, so with k = d (one head) it is (beta1, alpha1) = (0.7, 0.7) up to
the draw; with k < d its diagonal is smaller (0.31 for 4 heads of 16 at d = 64, 0.39 for vit_tiny's
3 heads of 64 at d = 192). W_v W_proj is not set to a target: each layer factors one target
alpha2 Z / sqrt(d) - beta2 I = L R into its value (L) and projection (R) weights, so the heads'
products add up to (the transpose of) R L, which has the target's trace and eigenvalues but not its
entries: diagonal mean -beta2 = -0.4 up to the draw, off-diagonal std x sqrt(d) about 0.28 rather
than alpha2 = 0.4, and a head's diagonal mean about -beta2 / H. Measured on the 4-block, width-64,
one-head ViT, seeds 0-4, every layer: W_q W_k^T 0.67 to 0.73 and 0.69 to 0.71, W_v W_proj -0.41 to
-0.39 and 0.27 to 0.29.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from . import models, train
from .mimetic import PRODUCTS, attention_layers, head_products

Tensor = torch.Tensor


@lru_cache(maxsize=64)
def has_attention(spec: str) -> bool:
    """Whether the model a spec names has timm's standard self-attention in every block (built on
    the meta device: nothing is allocated)."""
    if models.parse_spec(spec)["kind"] != "timm":
        return False
    try:
        with torch.device("meta"):
            attention_layers(models.build_model(spec, num_classes=10, in_chans=3))
    except (ValueError, TypeError, RuntimeError):
        return False
    return True


def model_products(model: torch.nn.Module) -> list[tuple[Tensor, Tensor]]:
    """(QK, VO) of every attention layer, each H x d x d (ValueError for a model without them)."""
    return [head_products(attn) for _, attn in attention_layers(model)]


def run_products(run: train.RunResult) -> dict[str, list[tuple[Tensor, Tensor]]]:
    """{"at init": ..., "trained": ...}: model_products of a stored run's network as its config and
    seed built it, and with its stored weights. ValueError when the run kept no weights."""
    if not run.state_dict:
        raise ValueError(f"run #{run.id} kept no weights; train with `compare --save --keep-weights` to keep them")
    info = train.load_training_data(run.config)[4]
    model = train.build_model_for(run.config, info)
    initial = model_products(model)
    model.load_state_dict(run.state_dict)
    return {"at init": initial, "trained": model_products(model)}


def product_stats(product: Tensor) -> tuple[float, float]:
    """(mean of the diagonal, std of the off-diagonal entries x sqrt(d)) of one d x d product: beta
    and alpha for a mimetic target alpha Z / sqrt(d) + beta I."""
    d = product.shape[-1]
    off = product[~torch.eye(d, dtype=torch.bool)]
    return product.diagonal().mean().item(), off.std().item() * math.sqrt(d)


def stats_rows(stages: dict[str, list[tuple[Tensor, Tensor]]]) -> list[dict]:
    """One row per stage, layer and head: product_stats of both products."""
    rows = []
    for stage, layers in stages.items():
        for layer, pair in enumerate(layers, start=1):
            for head in range(pair[0].shape[0]):
                row = {"weights": stage, "layer": layer, "head": head + 1}
                for name, product in zip(PRODUCTS, pair):
                    row[f"{name} diagonal"], row[f"{name} off-diag. ×√d"] = product_stats(product[head])
                rows.append(row)
    return rows
