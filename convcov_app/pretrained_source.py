"""The Learned Covariances page's "A pretrained timm model" source: the sidebar's choice of model and
weights, and the cached learned set (convcov_core.pretrained)."""

from __future__ import annotations

import streamlit as st

from convcov_core import learned_sets, pretrained

HUB = "Hugging Face cache"
PAPER_MODEL = "convmixer_1536_20.in1k"  # the network of the paper's first observation

MODEL_HELP = (
    "timm loads the weights itself (`timm.create_model(name, pretrained=True)`), from the Hugging Face "
    "cache ($HF_HOME/hub; only from it when HF_HUB_OFFLINE=1) or the hub. Listed: the pretrained "
    "ConvMixers (7 × 7 and 9 × 9), ConvNeXt and ConvNeXt-V2, ConvFormer and CAFormer, MambaOut, RDNet, "
    "StarNet, MaxxViT, CoAtNeXt, FastViT and iFormer (7 × 7). A model with several filter shapes gives "
    "its largest square ones (FastViT and iFormer leave their 3 × 3 layers out). Not listed: InceptionNeXt "
    "(its large filters are 1 × 11 and 11 × 1 bands, not k × k), EdgeNeXt (3 × 3 to 9 × 9 by stage: one "
    "or two 9 × 9 layers), models whose filters stop at 3 × 3 or 5 × 5; timm has no RepLKNet-style "
    "model. docs/learned.md lists them.")


@st.cache_data(max_entries=1, show_spinner=False)
def _names() -> list[str]:
    return pretrained.pretrained_names()


def pick() -> tuple[str, str, str | None]:
    """Sidebar widgets: ("timm", model name.tag, a weight file's name in pretrained.weights_dir() or
    None for the Hugging Face cache)."""
    names = _names()
    name = st.selectbox("timm model", names, key="lc_timm", help=MODEL_HELP,
                        index=names.index(PAPER_MODEL) if PAPER_MODEL in names else 0)
    files = pretrained.weight_files()
    weights = st.selectbox("Weights", [HUB, *files], key="lc_timm_weights",
                           help=f"The {HUB} (see the model's help), or a file you put in "
                                f"{pretrained.weights_dir()}: timm reads it as the model's pretrained file "
                                "(.safetensors, or a torch.save file read weights-only).")
    st.caption(f"A weights file you put in {pretrained.weights_dir()} appears under *Weights*.")
    return ("timm", name, None if weights == HUB else weights)


@st.cache_data(max_entries=4, show_spinner=False)
def _learned(name: str, weights: str | None, stamp: float | None) -> learned_sets.LearnedSet:
    path = None if weights is None else pretrained.weights_dir() / weights
    return pretrained.learned_from_pretrained(name, path)


def learned_set(name: str, weights: str | None) -> learned_sets.LearnedSet:
    """The model's learned set, loaded once per model and weight file (a changed file loads again)."""
    path = None if weights is None else pretrained.weights_dir() / weights
    stamp = path.stat().st_mtime if path is not None and path.is_file() else None
    with st.spinner(f"Loading {name}'s pretrained weights through timm…"):
        return _learned(name, weights, stamp)
