"""Heatmaps of one attention head's weight products W_q W_kᵀ and W_v W_proj (convcov_core.attention),
one row per stage (at init, trained), on one shared diverging colour scale."""

from __future__ import annotations

import plotly.graph_objects as go
import torch

from ..mimetic import PRODUCTS
from .matrix_image import image_grid_figure
from .style import to_numpy


def attention_figure(stages: dict[str, tuple[torch.Tensor, torch.Tensor]], *, panel_height: int = 300) -> go.Figure:
    """stages: name -> (QK, VO) of one head, each d x d; a row of two panels per stage."""
    panels, titles = [], []
    for stage, pair in stages.items():
        for name, product in zip(PRODUCTS, pair):
            panels.append(to_numpy(product.float()))
            titles.append(f"{name}, {stage}")
    return image_grid_figure(panels, titles, columns=2, bar_title="product entry", panel_height=panel_height)
