"""The Learned Covariances page's attention view (convcov_core.attention): for a saved Vision
Transformer run, one head's W_q W_kᵀ and W_v W_proj at init and after training, and every head's
diagonal mean and off-diagonal spread against what mimetic init sets."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from convcov_core import attention, mimetic
from convcov_core.plots.attention import attention_figure

from . import labels
from .store import run_store
from .support import CHART

MEASURE_COMMAND = ("python -m convcov_core compare --model timm:vit_tiny_patch16_224:depth=4,embed_dim=64,"
                   "num_heads=1 --patch-size 4 --inits default,mimetic --save --keep-weights")


def attention_runs() -> dict[str, int]:
    """Label -> id of every stored run of a model with standard self-attention that kept its weights."""
    return {labels.run_label(s): s.id for s in run_store().list()
            if s.has_weights and attention.has_attention(s.model)}


@st.cache_data(max_entries=4, show_spinner="Rebuilding the run's initial weights and reading its trained ones…")
def products_of(store_path: str, run_id: int) -> dict:
    """attention.run_products of a stored run (a stored run never changes)."""
    return attention.run_products(run_store().get(run_id))


def pick_run() -> int | None:
    """Sidebar: the saved ViT run to look at, or None (with how to make one)."""
    runs = attention_runs()
    if not runs:
        st.caption(f"No saved Vision Transformer run with weights yet: `{MEASURE_COMMAND}` saves some.")
        return None
    return runs[st.selectbox("Run", list(runs), key="lc_attn_run")]


def show(run_id: int) -> None:
    """The view of one run: a head's products as heatmaps and the statistics table."""
    st.subheader("Attention: W_q W_kᵀ and W_v W_proj per head")
    st.markdown(
        "The attention analogue of the filter covariance. Per head, W_q W_kᵀ (d × d, d the embedding width) "
        "is the bilinear form that scores a query token against a key token, and W_v W_proj maps what a head "
        "reads to what it adds back. Pre-trained ViTs have W_q W_kᵀ close to +I and W_v W_proj close to −I; "
        "mimetic init (Trockman & Kolter 2023, built as the reference code osiriszjq/structured_init builds "
        "it) starts them near there. Each head's W_q W_kᵀ is the best rank-(head dim) approximation of its own "
        "α₁Z/√d + β₁I. Each layer draws one α₂Z/√d − β₂I = L R, stores L as the value weights and R as the "
        "projection's and splits them over the heads, so the heads' W_v W_proj add up to R L (transposed): the "
        f"target's trace and eigenvalues, not the target itself. α₁ = β₁ = {mimetic.DEFAULTS['alpha1']}, "
        f"α₂ = β₂ = {mimetic.DEFAULTS['alpha2']}.")
    stages = products_of(str(run_store().path), run_id)
    layers = stages["at init"]
    left, right = st.columns(2)
    layer = left.selectbox("Layer", range(1, len(layers) + 1), key="lc_attn_layer")
    head = right.selectbox("Head", range(1, layers[0][0].shape[0] + 1), key="lc_attn_head")
    chosen = {stage: tuple(p[head - 1] for p in pairs[layer - 1]) for stage, pairs in stages.items()}
    st.plotly_chart(attention_figure(chosen), **CHART)
    st.caption("Row: weights at init (rebuilt from the run's config and seed) and after training; one colour "
               "scale for all four. A bright diagonal is an identity-like product: + for W_q W_kᵀ, − for "
               "W_v W_proj.")
    table = pd.DataFrame(attention.stats_rows(stages))
    st.dataframe(table.style.format(precision=3), hide_index=True)
    st.caption("Diagonal: the diagonal's mean, β of a target α Z/√d + β I. Off-diag. ×√d: the off-diagonal "
               "entries' std times √d, α. Mimetic init with one head per layer (the 4-block, width-64 ViT, "
               "seeds 0-4) starts W_q W_kᵀ at (0.7, 0.7) up to its random draw (diagonal 0.67 to 0.73, "
               "off-diagonal 0.69 to 0.71) and W_v W_proj at about (−0.4, 0.28): the diagonal is the target's "
               "−β₂, the off-diagonal smaller than its α₂ = 0.4 (0.27 to 0.29), as R L is not L R. With H heads "
               "a head's W_v W_proj diagonal is about −0.4/H, and W_q W_kᵀ's diagonal falls below 0.7 when the "
               "head dimension is below d (0.31 with 4 heads of 16 at d = 64). timm's default init (weights of "
               "std 0.02) starts near (0, 0.026).")
