"""Mimetic initialization of self-attention (Trockman & Kolter 2023, "Mimetic Initialization of
Self-Attention Layers"), in place on timm Vision Transformers, and the per-head weight products it sets.

The paper's statement: "we set the product of the query and key weights to be approximately the
identity, and the product of the value and projection weights to approximately the negative
identity", as pre-trained ViTs have them. Built as the reference code builds it (the timm fork of
osiriszjq/structured_init, vision_transformer.py: get_ortho_like and the mimetic branch of
_init_weights), with targets

    T1 = alpha1 Z1 / sqrt(d) + beta1 I,    T2 = alpha2 Z2 / sqrt(d) - beta2 I,

Z d x d with i.i.d. N(0, 1) entries (the reference's dist="normal"; its default draws uniform noise of
the same variance), d the embedding width, factored as T = U S V^T = L R, L = U S^(1/2), R = S^(1/2) V^T:
- Queries/keys: a target T1 per head and layer; head h, of dimension k, gets its best rank-k
  approximation (Eckart-Young): with tokens as row vectors (scores x W_q^h (x W_k^h)^T),
  W_q^h = U_k S_k^(1/2), W_k^h = V_k S_k^(1/2), so W_q^h W_k^h^T = U_k S_k V_k^T.
- Values/projection: one full-rank target T2 per layer, split over the heads: the value weight, as
  nn.Linear stores it (H k x d, out x in), is L and the projection's (d x H k) is R, so head h holds
  rows h k ... (h + 1) k of L and those columns of R. The layer's product proj.weight @ W_value (the
  transpose of W_v W_proj summed over the heads, in row vectors) is R L = L^-1 T2 L: similar to T2
  (the same eigenvalues and trace, so the diagonal's mean is T2's, -beta2 up to noise) but not T2
  (its diagonal spreads, its off-diagonal is smaller: measured at d = 192, diagonal std 0.24 and
  off-diagonal std 0.28 / sqrt(d) against 0.03 and 0.40 / sqrt(d) for T2). Head h's share of the
  trace is T2's diagonal over its k rows: about -beta2 / H each.
- Signs: + beta1 I and - beta2 I, as the statement says. Scale: Z / sqrt(d) is Wigner-scaled
  (rows of unit expected norm, spectral norm about 2), of the order of I at any width; the softmax's
  1 / sqrt(k) is left out (the target is the weights' own product).
- Random draws in the reference's order: every layer's query/key targets (head by head), then every
  layer's value/projection target.
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


def _set_query_key_(attn: nn.Module, alpha: float, beta: float, generator: torch.Generator | None) -> None:
    """Per head h a fresh target alpha Z / sqrt(d) + beta I, W_q^h W_k^h^T its best rank-k approximation."""
    heads, d = attn.num_heads, attn.qkv.in_features
    k = attn.proj.in_features // heads
    qkv = attn.qkv.weight.detach().float().cpu().reshape(3, heads, k, d)
    for h in range(heads):
        w_q, w_k = low_rank_factors(mimetic_target(d, alpha, beta, generator), k)
        qkv[0, h], qkv[1, h] = w_q.T, w_k
    attn.qkv.weight.copy_(qkv.reshape(attn.qkv.weight.shape))


def _set_value_proj_(attn: nn.Module, alpha: float, beta: float, generator: torch.Generator | None) -> None:
    """One target alpha Z / sqrt(d) - beta I = L R for the layer: value weight (out x in) L, projection's R."""
    d = attn.qkv.in_features
    left, right = low_rank_factors(mimetic_target(d, alpha, -beta, generator), d)
    attn.qkv.weight[2 * d:] = left.to(attn.qkv.weight)
    attn.proj.weight.copy_(right)


@torch.no_grad()
def mimetic_(model: nn.Module, alpha1: float = DEFAULTS["alpha1"], beta1: float = DEFAULTS["beta1"],
             alpha2: float = DEFAULTS["alpha2"], beta2: float = DEFAULTS["beta2"], *,
             generator: torch.Generator | None = None) -> list[str]:
    """Set every attention layer's query/key and value/projection weights in place, as the reference
    does: per head W_q W_k^T ~ alpha1 Z1 / sqrt(d) + beta1 I (rank k), per layer one target
    alpha2 Z2 / sqrt(d) - beta2 I split over the heads (see the module docstring); return the layers' names.

    The four coefficients are finite numbers >= 0 (the scheme fixes the signs). Works on timm Vision
    Transformers and any model with blocks[i].attn.{qkv, proj, num_heads} whose heads are d wide in
    all; others are refused with ValueError. Biases and all other parameters are untouched.
    """
    a1, b1, a2, b2 = (float_param(x, n) for n, x in
                      (("alpha1", alpha1), ("beta1", beta1), ("alpha2", alpha2), ("beta2", beta2)))
    layers = attention_layers(model)
    for name, attn in layers:
        if attn.proj.in_features != attn.qkv.in_features:
            raise ValueError(f"mimetic init splits a d x d value/projection target over the heads; {name}'s heads "
                             f"are {attn.proj.in_features} wide in all, not d = {attn.qkv.in_features}")
    for _, attn in layers:
        _set_query_key_(attn, a1, b1, generator)
    for _, attn in layers:
        _set_value_proj_(attn, a2, b2, generator)
    return [name for name, _ in layers]
