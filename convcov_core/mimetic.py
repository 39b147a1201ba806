"""Mimetic initialization of self-attention (Trockman & Kolter 2023, "Mimetic Initialization of
Self-Attention Layers"), in place on timm Vision Transformers, and the per-head weight products it sets.

The paper's statement: "we set the product of the query and key weights to be approximately the
identity, and the product of the value and projection weights to approximately the negative
identity", as pre-trained ViTs have them. Per head h, with the d-dimensional tokens as row vectors
(scores q_h k_h^T = x W_q^h (x W_k^h)^T, output sum_h A_h x W_v^h W_proj^h), that is

    W_q^h W_k^h^T ~ alpha1 Z1 / sqrt(d) + beta1 I,    W_v^h W_proj^h ~ alpha2 Z2 / sqrt(d) - beta2 I,

Z1, Z2 d x d with i.i.d. N(0, 1) entries, drawn afresh for every head and layer. Choices, and why:
- Signs: + beta1 I and - beta2 I, as the statement says (queries attend to keys like themselves; the
  value path subtracts a token's own feature).
- Scale: d is the embedding width, the side of the product, so Z / sqrt(d) is a Wigner-scaled
  matrix (rows of unit expected norm, spectral norm about 2) of the same order as I; alpha and beta
  then weigh noise against identity on one scale whatever the width. The head dimension k and the
  softmax's 1 / sqrt(k) are left out: the target is the weights' own product.
- Rank: a head's product is d x d of rank k = head_dim, so it gets the best rank-k approximation of
  its target (Eckart-Young): target = U S V^T, W_q^h = U_k S_k^(1/2), W_k^h = V_k S_k^(1/2) (likewise
  W_v^h = U_k S_k^(1/2), W_proj^h = S_k^(1/2) V_k^T). With one head (k = d) the product is the target.
Biases, norms and the MLPs keep the model's own init.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .validation import float_param

Tensor = torch.Tensor

#: The paper's defaults: (alpha1, beta1) for W_q W_k^T, (alpha2, beta2) for W_v W_proj.
DEFAULTS = dict(alpha1=0.7, beta1=0.7, alpha2=0.4, beta2=0.4)
#: What head_products' two products are called, in its order.
PRODUCTS = ("W_q W_kᵀ", "W_v W_proj")


def attention_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, attention module) of each `blocks[i].attn` with the standard timm layout: `qkv`
    (Linear d -> 3 H k), `proj` (Linear H k -> d) and `num_heads`. ValueError naming what is missing."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential | nn.ModuleList) or len(blocks) == 0:
        raise ValueError(f"mimetic init needs a Vision Transformer with attention blocks (model.blocks[i].attn "
                         f"with qkv and proj layers, as timm's ViTs have); {type(model).__name__} has no "
                         "'blocks'")
    layers = []
    for i, block in enumerate(blocks):
        attn = getattr(block, "attn", None)
        qkv, proj = getattr(attn, "qkv", None), getattr(attn, "proj", None)
        missing = [what for what, ok in (("attn", attn is not None), ("attn.qkv (Linear)", isinstance(qkv, nn.Linear)),
                                         ("attn.proj (Linear)", isinstance(proj, nn.Linear)),
                                         ("attn.num_heads", hasattr(attn, "num_heads"))) if not ok]
        if missing:
            raise ValueError(f"mimetic init needs timm's standard self-attention in every block; "
                             f"{type(model).__name__}'s blocks[{i}] has no {', '.join(missing)}")
        d, width = qkv.in_features, proj.in_features
        if qkv.out_features != 3 * width or proj.out_features != d or width % attn.num_heads:
            raise ValueError(f"blocks[{i}].attn: qkv {d} -> {qkv.out_features} and proj {width} -> "
                             f"{proj.out_features} are not the standard d -> 3 H k and H k -> d")
        layers.append((f"blocks.{i}.attn", attn))
    return layers


def low_rank_factors(target: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """(L, R), d x rank and rank x d, with L R the best rank-`rank` approximation of the square
    `target`: target = U S V^T, L = U_r S_r^(1/2), R = S_r^(1/2) V_r^T (zero columns past d)."""
    u, s, vh = torch.linalg.svd(target)
    r = min(rank, s.numel())
    root = s[:r].sqrt()
    left = torch.zeros(target.shape[0], rank, dtype=target.dtype)
    right = torch.zeros(rank, target.shape[1], dtype=target.dtype)
    left[:, :r] = u[:, :r] * root
    right[:r] = root[:, None] * vh[:r]
    return left, right


def mimetic_target(d: int, alpha: float, beta: float, generator: torch.Generator | None = None) -> Tensor:
    """alpha Z / sqrt(d) + beta I (float64), Z d x d with i.i.d. N(0, 1) entries."""
    z = torch.randn(d, d, generator=generator, dtype=torch.float64)
    return alpha * z / math.sqrt(d) + beta * torch.eye(d, dtype=torch.float64)


def head_products(attn: nn.Module) -> tuple[Tensor, Tensor]:
    """(QK, VO), each H x d x d (float32, CPU): per head W_q^h W_k^h^T and W_v^h W_proj^h of a timm
    attention module, in the row-vector convention of the module docstring."""
    heads = attn.num_heads
    d, width = attn.qkv.in_features, attn.proj.in_features
    k = width // heads
    q, key, v = attn.qkv.weight.detach().float().cpu().reshape(3, heads, k, d).unbind(0)
    proj = attn.proj.weight.detach().float().cpu().reshape(d, heads, k).permute(1, 2, 0)  # H x k x d
    return q.transpose(1, 2) @ key, v.transpose(1, 2) @ proj


@torch.no_grad()
def mimetic_(model: nn.Module, alpha1: float = DEFAULTS["alpha1"], beta1: float = DEFAULTS["beta1"],
             alpha2: float = DEFAULTS["alpha2"], beta2: float = DEFAULTS["beta2"], *,
             generator: torch.Generator | None = None) -> list[str]:
    """Set every attention layer's query/key and value/projection weights in place so that, per head,
    W_q W_k^T ~ alpha1 Z1 / sqrt(d) + beta1 I and W_v W_proj ~ alpha2 Z2 / sqrt(d) - beta2 I (see the
    module docstring for signs, scale and the rank-k factorization); return the layers' names.

    The four coefficients are finite numbers >= 0 (the scheme fixes the signs). Works on timm Vision
    Transformers and any model with blocks[i].attn.{qkv, proj, num_heads}; others are refused with
    ValueError. Biases and all other parameters are untouched.
    """
    a1, b1, a2, b2 = (float_param(x, n) for n, x in
                      (("alpha1", alpha1), ("beta1", beta1), ("alpha2", alpha2), ("beta2", beta2)))
    layers = attention_layers(model)
    for _, attn in layers:
        heads, d = attn.num_heads, attn.qkv.in_features
        k = attn.proj.in_features // heads
        qkv = attn.qkv.weight.detach().float().cpu().reshape(3, heads, k, d)
        proj = attn.proj.weight.detach().float().cpu().reshape(d, heads, k)
        for h in range(heads):
            w_q, w_k = low_rank_factors(mimetic_target(d, a1, b1, generator), k)
            w_v, w_proj = low_rank_factors(mimetic_target(d, a2, -b2, generator), k)
            qkv[0, h], qkv[1, h], qkv[2, h] = w_q.T, w_k, w_v.T
            proj[:, h] = w_proj.T
        attn.qkv.weight.copy_(qkv.reshape(attn.qkv.weight.shape))
        attn.proj.weight.copy_(proj.reshape(attn.proj.weight.shape))
    return [name for name, _ in layers]
