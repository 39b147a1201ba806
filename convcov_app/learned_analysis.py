"""Everything the Learned Covariances page shows for one set of learned covariances: every layer's
covariance and its average by pixel offset, fitted σ against depth, one layer beside the closed form
that fits it, and the set transferred to another kernel size and depth, to use as init or download."""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from convcov_core import covariance, family_fits, learned_sets, matrix_files, settings
from convcov_core.plots import learned as figures

from . import families, lab, lab_sidebar, learned
from .support import CHART, reset_when_changed
from .uploads import too_small_kernel


@st.cache_data(max_entries=8, show_spinner="Fitting σ to every layer…")
def fits_of(key: str, _learned: learned_sets.LearnedSet) -> list:
    return learned_sets.layer_fits(_learned.covariances)


@st.cache_data(max_entries=8, show_spinner="Fitting five closed forms to every layer…")
def family_fits_of(key: str, _learned: learned_sets.LearnedSet) -> list:
    return family_fits.family_fits(_learned.covariances)


@st.cache_data(max_entries=8, show_spinner=False)
def profiles_of(key: str, _learned: learned_sets.LearnedSet) -> list:
    return [learned_sets.offset_profile(S) for S in _learned.covariances]


@st.cache_data(max_entries=8, show_spinner="Transferring…")
def transferred(key: str, _learned: learned_sets.LearnedSet, k: int, depth: int) -> list:
    return covariance.transfer(_learned.covariances, k, depth)


@st.cache_data(max_entries=8, show_spinner="Fitting σ to the transferred layers…")
def transferred_fits(key: str, _learned: learned_sets.LearnedSet, k: int, depth: int) -> list:
    """Fitted σ of the first and last transferred layers."""
    layers = transferred(key, _learned, k, depth)
    return learned_sets.layer_fits([layers[0], layers[-1]])


@st.cache_data(max_entries=4, show_spinner=False)
def transferred_file(key: str, _learned: learned_sets.LearnedSet, k: int, depth: int, fmt: str) -> bytes:
    return matrix_files.covariance_bytes(transferred(key, _learned, k, depth), fmt)


@st.cache_resource(max_entries=8, show_spinner=False)  # read-only figure: no unpickling
def layers_figure(key: str, _learned: learned_sets.LearnedSet, titles: list[str]):
    """The grid of every layer's covariance (built once per set: large k makes it slow to draw)."""
    return figures.layer_grid_figure(_learned.covariances, titles, columns=min(_learned.depth, learned.GRID_COLUMNS),
                                     panel_height=230)


@st.cache_resource(max_entries=8, show_spinner=False)  # read-only figure: no unpickling
def transfer_figure(key: str, _learned: learned_sets.LearnedSet, k: int, depth: int):
    """The transferred covariances as a grid: all layers up to learned.SHOWN_LAYERS, else every step-th."""
    step = learned.transfer_step(depth)
    shown = transferred(key, _learned, k, depth)[::step]
    return figures.layer_grid_figure(shown, [f"layer {1 + i * step} of {depth}" for i in range(len(shown))],
                                     columns=min(len(shown), learned.GRID_COLUMNS), panel_height=230)


def layers_section(learned_set: learned_sets.LearnedSet, key: str, fits: list) -> None:
    """Every layer's covariance (tiled) and its average by pixel offset."""
    st.subheader("Every layer's learned covariance")
    titles = learned.layer_titles(fits)
    st.plotly_chart(layers_figure(key, learned_set, titles), **CHART)
    st.caption(learned.layers_caption(learned_set.kernel_size))
    depth = learned_set.depth
    profiles = figures.offset_profile_figure(profiles_of(key, learned_set), [t.split(",")[0] for t in titles],
                                             columns=min(depth, 8), panel_height=150 if depth > 8 else 190)
    st.plotly_chart(profiles, **CHART)
    st.caption(learned.PROFILES_CAPTION)


def sigma_section(learned_set: learned_sets.LearnedSet, fits: list) -> None:
    """Fitted σ per layer against the closed form's schedule, with the table of fits."""
    left, right = st.columns([1.2, 1], gap="medium")
    first, last = learned_sets.fitted_schedule(fits)
    schedule = learned_sets.closed_form_schedule(learned_set.kernel_size, learned_set.depth)
    left.plotly_chart(figures.sigma_depth_figure(fits, schedule, fitted_line=(first, last)), **CHART)
    with right:
        table = pd.DataFrame(learned.fits_table(fits, learned_set.layer_names))
        st.dataframe(table.style.format({"fitted σ": "{:.2f}", "r": "{:.2f}"}), hide_index=True,
                     height=min(38 + 35 * len(table), 320))
        st.caption(learned.schedule_caption(first, last, schedule))


def families_section(learned_set: learned_sets.LearnedSet, key: str) -> None:
    """Is it Gaussian? Every closed-form family's fit to every layer, the best marked."""
    rows = family_fits_of(key, learned_set)
    st.subheader("Is it Gaussian? Five closed forms, layer by layer")
    st.markdown(families.answer(rows))
    st.dataframe(families.family_table(rows, learned_set.layer_names), hide_index=True)
    st.caption(families.CAPTION)


def closed_form_section(learned_set: learned_sets.LearnedSet, fits: list) -> None:
    """One layer beside the closed form that fits it, and their difference."""
    st.subheader("One layer: learned vs closed form")
    depth = learned_set.depth
    layer = st.slider("Layer", 1, depth, key="lc_layer") - 1 if depth > 1 else 0
    fit = fits[layer]
    S, closed, diff = learned_sets.closed_form_beside(learned_set.covariances[layer], fit["sigma"])
    st.plotly_chart(figures.closed_form_figure(S, closed, diff, sigma=fit["sigma"], r=fit["r"],
                                               layer=f"layer {layer + 1}, {learned_set.layer_names[layer]}"),
                    **CHART)
    st.caption(learned.opened_caption(fits))


def transfer_section(learned_set: learned_sets.LearnedSet, key: str, name_hint: str) -> None:
    """The set resized to another kernel size and depth: preview, what it does to σ, use and download."""
    k = learned_set.kernel_size
    st.subheader("Transfer preview and use as init")
    st.markdown("Resize the learned covariances to another kernel size (interpolating every axis of "
                "the block tensor, then the nearest PSD matrix) and depth (layer l′ takes the "
                "covariance at the same relative depth), as the *learned* init does for any model.")
    c1, c2 = st.columns(2)
    max_k = max(min(31, settings.max_kernel_size()), k)
    new_k = c1.slider("Kernel size k′", 3, max_k, step=2 if k % 2 else 1, key="lc_new_k")
    new_depth = c2.slider("Depth L′", 1, 32, key="lc_new_depth")
    st.plotly_chart(transfer_figure(key, learned_set, new_k, new_depth), **CHART)
    for note in learned.transfer_notes(k, new_k, new_depth):
        st.caption(note)
    if new_k != k:
        before, after = fits_of(key, learned_set), transferred_fits(key, learned_set, new_k, new_depth)
        st.caption(learned.resize_caption(k, new_k, before, after))
    save_and_download(learned_set, key, learned.set_name(name_hint, new_k, new_depth), new_k, new_depth)


def save_and_download(learned_set: learned_sets.LearnedSet, key: str, default_name: str, new_k: int,
                      new_depth: int) -> None:
    """"Use as init" (a named covariance set for the Training Lab) and the .npy / .pt downloads."""
    n1, n2 = st.columns([2, 1], vertical_alignment="bottom")
    name = n1.text_input("Name for the Training Lab", default_name, key=f"lc_set_name_{default_name}",
                         max_chars=60)
    if n2.button("Use as init", key="lc_use", type="primary"):
        path = learned_sets.save_covariance_set(name, transferred(key, learned_set, new_k, new_depth),
                                                source=learned_set.source)
        lab_sidebar.preselect_learned(lab.covariance_set_label(
            learned_sets.CovarianceSetInfo(path.stem, new_k, new_depth, learned_set.source)))
        st.success(f"Saved as covariance set '{name.strip()}'. Open the Training Lab and add *Learned "
                   "covariance* to the init schemes: this set is preselected.")
    d1, d2, d3 = st.columns([1, 1, 3], vertical_alignment="center")
    for column, fmt in ((d1, "npy"), (d2, "pt")):
        column.download_button(f"Download .{fmt}", partial(transferred_file, key, learned_set, new_k, new_depth, fmt),
                               file_name=f"{default_name}.{fmt}", key=f"lc_download_{fmt}")
    d3.caption(learned.download_caption(new_k, new_depth))


def analysis(learned_set: learned_sets.LearnedSet, key: str, name_hint: str, reach_warning: str | None = None) -> None:
    """Everything shown for one set of learned covariances; `key` identifies it for the caches."""
    k, depth = learned_set.kernel_size, learned_set.depth
    if (too_small := too_small_kernel(learned_set.source, k)) is not None:  # a checkpoint of 1 x 1 filters
        raise ValueError(f"{too_small}.")
    fits = fits_of(key, learned_set)
    reset_when_changed("lc_shown", key, dict(lc_layer=learned_sets.most_structured_layer(fits) + 1,
                                             lc_new_k=k, lc_new_depth=depth))
    st.markdown(f"**Source:** {learned_set.source}. {depth} depthwise layer(s), {k} × {k} filters.")
    if reach_warning:
        st.warning(reach_warning)
    layers_section(learned_set, key, fits)
    sigma_section(learned_set, fits)
    families_section(learned_set, key)
    closed_form_section(learned_set, fits)
    transfer_section(learned_set, key, name_hint)
