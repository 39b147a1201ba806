"""The Learned Covariances page's presenter: its sources and what it says when one has nothing to show, the
layers' titles and the table of fits, what the captions say about a set, its closed-form fit and its
transfer to another kernel size and depth, and the names a transferred set is saved and downloaded
under. No streamlit here."""

from __future__ import annotations

import re

from convcov_core import learned_sets
from convcov_core.plots.covariance import TILE_LINES_MAX_K

RUN, QUICK, CHECKPOINT, FILE, ATTENTION, TIMM = SOURCES = (
    "A saved run", "A quick run trained here", "An uploaded checkpoint", "An uploaded covariance file",
    "Attention of a saved ViT run", "A pretrained timm model")
QUICK_DATASETS = ("mnist5k", "noisy-mnist", "textures")
WIDTHS = (16, 32, 64, 128)
GRID_COLUMNS = 4  # tiled panels a row: at six, an 81 x 81 view had 125 px and read as noise
SHOWN_LAYERS = 12  # transferred layers drawn at the most


def nothing_to_show(source: str, measure_command: str) -> str | None:
    """What the page says when `source` gives no covariances yet (None: the sidebar says it)."""
    return {
        CHECKPOINT: "Upload a checkpoint in the sidebar: a .safetensors file or a torch.save file of "
                    "model.state_dict() of our ConvMixer, a timm ConvMixer or a timm ConvNeXt.",
        FILE: "Upload covariances in the sidebar: depth × k² × k² (one k² × k² matrix per layer, first layer "
              "first), as this page's download or `python -m convcov_core learned --out` writes them.",
        ATTENTION: f"No saved Vision Transformer run with its weights yet. Run `{measure_command}` to save some.",
        RUN: "No saved run with trained filters yet. Choose *A quick run trained here* in the sidebar, or run "
             "a comparison with trained filters in the Training Lab.",
    }.get(source)


def name_hint(name: str, limit: int | None = None) -> str:
    """A file-name part from a run, model or file name: runs of other characters become '-'."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name)[:limit]


def set_name(hint: str, k: int, depth: int) -> str:
    """The name a transferred set is offered under and downloaded as."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", f"{hint}-k{k}-d{depth}").strip("-")[:60]


def layer_titles(fits: list[dict]) -> list[str]:
    return [f"{i + 1}: σ = {fit['sigma']:.2f}, r = {fit['r']:.2f}" for i, fit in enumerate(fits)]


def layers_caption(k: int) -> str:
    """Under the grid of every layer's covariance: the view at this k and what the titles say."""
    view = (f"The centre pixel's block ({k // 2}, {k // 2}) of each layer (at k = {k} the tiled view has more "
            "cells than a panel has pixels)" if k > TILE_LINES_MAX_K
            else "Tiled view (tile (i, j) shows how pixel (i, j) co-varies with every pixel)")
    return (view + ", each layer divided by its mean variance. Titles: the σ of the closed-form Gaussian that "
            "fits the layer best, and how well it fits (Pearson r over all entries; 1 = exactly Gaussian).")


PROFILES_CAPTION = ("The same covariances averaged over all pixel pairs at each offset (centre: a pixel with "
                    "itself, 1 = the variance). The tiles above are noisy when a layer has few channels; this "
                    "average shows the bump each one holds, and how it widens with depth.")


def fits_table(fits: list[dict], layer_names: list[str]) -> list[dict]:
    return [{"layer": f"{f['layer']}: {name}", "fitted σ": f["sigma"], "r": f["r"]}
            for f, name in zip(fits, layer_names)]


def schedule_caption(first: float, last: float, schedule: list[float]) -> str:
    return (f"In trained ConvMixers σ grows with depth. The straight line through these layers runs from "
            f"σ = {first:.2f} to {last:.2f}; the Gaussian init's default schedule (dashed) runs from "
            f"{schedule[0]:g} to {schedule[-1]:.3g}. Use the fitted values as σ_first / σ_last in the "
            "Training Lab to imitate this network.")


def opened_caption(fits: list[dict]) -> str:
    """Which layer the page opens on, and why (learned_sets.most_structured_layer)."""
    opened, min_r = learned_sets.most_structured_layer(fits), learned_sets.STRUCTURED_MIN_R
    why = (f"the widest bump the closed form fits (the largest fitted σ with r ≥ {min_r:g})"
           if fits[opened]["r"] >= min_r else f"the best fit (no layer's r reaches {min_r:g})")
    return (f"The page opens on layer {opened + 1}, {why}. Tiled views; hover a cell for its pixel pair. Learned "
            "and closed form are both scaled to unit mean diagonal and share a colour scale. The difference "
            "shows what the closed form misses, often a negative ring around each pixel's bump.")


def transfer_step(depth: int) -> int:
    """Every how many transferred layers one is drawn: all up to SHOWN_LAYERS."""
    return 1 if depth <= SHOWN_LAYERS else depth // SHOWN_LAYERS


def transfer_notes(k: int, new_k: int, new_depth: int) -> list[str]:
    """Captions under the transfer preview: layers left out, the centre-pixel view above TILE_LINES_MAX_K."""
    notes = [f"One layer in {new_depth // SHOWN_LAYERS} of the {new_depth} shown."] if new_depth >= 24 else []
    if new_k > TILE_LINES_MAX_K:
        notes.append(f"At k′ = {new_k} each panel shows the centre pixel's block ({new_k // 2}, {new_k // 2}): "
                     "the tiled view has more cells than a panel has pixels.")
    return notes


def resize_caption(k: int, new_k: int, before: list[dict], after: list[dict]) -> str:
    """What resizing did to σ: `before` the fits of the first and last layers, `after` theirs transferred."""
    return (f"Resizing stretches the {k} × {k} window over {new_k} × {new_k} pixels, so σ, counted in pixels, "
            f"grows by about (k′ − 1)/(k − 1) = {(new_k - 1) / (k - 1):.2f} for wide bumps and more for narrow "
            f"ones: here layer 1 goes from σ {before[0]['sigma']:.2f} to {after[0]['sigma']:.2f} px and the last "
            f"from {before[-1]['sigma']:.2f} to {after[-1]['sigma']:.2f} px. To keep σ in pixels instead, give "
            "the Gaussian init the fitted schedule above (σ first → σ last).")


def download_caption(k: int, depth: int) -> str:
    return (f"The {depth} × {k * k} × {k * k} covariances (float64) for your own code: "
            "`init_depthwise_(model, \"learned\", covariances=list(torch.load(path, weights_only=True)))`, "
            "or `python -m convcov_core compare --learned-from path`.")
