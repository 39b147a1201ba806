"""What a trained network learned, layer by layer: fitted σ vs depth, closed form, transfer, use as init."""

import re
from functools import partial

import pandas as pd
import streamlit as st

from convcov_app import attention_section, background, lab, lab_sidebar, labels, pretrained_source
from convcov_app.navigation import page_setup
from convcov_app.store import run_reach_warning, run_store, runs_with_learned_covariances
from convcov_app.support import CHART, reset_when_changed, shown_errors
from convcov_app.uploads import checkpoint_uploader, read_upload_once, too_small_kernel
from convcov_core import covariance, data, examples, learned_sets, matrix_files, models, settings, train
from convcov_core.matrix_files import MATRIX_SUFFIXES
from convcov_core.plots import curves
from convcov_core.plots import learned as figures
from convcov_core.plots.covariance import TILE_LINES_MAX_K

page_setup("Learned Covariances")

SLOT = "lc"
SOURCES = ("A saved run", "A quick run trained here", "An uploaded checkpoint", "An uploaded covariance file",
           "Attention of a saved ViT run", "A pretrained timm model")
QUICK_DATASETS = ("mnist5k", "noisy-mnist", "textures")
WIDTHS = (16, 32, 64, 128)
GRID_COLUMNS = 4  # tiled panels a row: at six, an 81 x 81 view had 125 px and read as noise


def saved_runs() -> dict:
    """Label -> run id of every stored run whose filters were trained."""
    return {labels.run_label(r): r.id for r in runs_with_learned_covariances()}


@st.cache_data(max_entries=8, show_spinner="Reading the run's covariances…")
def run_set(store_path: str, run_id: int) -> learned_sets.LearnedSet:
    store = run_store()
    bundled = run_id == examples.stored_id(store)
    name = f"the bundled example (run #{run_id})" if bundled else None
    return learned_sets.learned_from_run(store.get(run_id), name=name)


@st.cache_data(max_entries=8, show_spinner=False)
def non_psd_layers(key: str, _learned: learned_sets.LearnedSet) -> list[int]:
    return learned_sets.non_psd_layers(_learned.covariances)


@st.cache_data(max_entries=8, show_spinner="Fitting σ to every layer…")
def fits_of(key: str, _learned: learned_sets.LearnedSet) -> list:
    return learned_sets.layer_fits(_learned.covariances)


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
    depth = _learned.depth
    return figures.layer_grid_figure(_learned.covariances, titles, columns=min(depth, GRID_COLUMNS),
                                     panel_height=230)


@st.cache_resource(max_entries=8, show_spinner=False)  # read-only figure: no unpickling
def transfer_figure(key: str, _learned: learned_sets.LearnedSet, k: int, depth: int):
    """The transferred covariances as a grid: all layers up to 12, else every (depth // 12)th."""
    step = 1 if depth <= 12 else depth // 12
    shown = transferred(key, _learned, k, depth)[::step]
    return figures.layer_grid_figure(shown, [f"layer {1 + i * step} of {depth}" for i in range(len(shown))],
                                     columns=min(len(shown), GRID_COLUMNS), panel_height=230)


def quick_run_settings() -> train.TrainConfig:
    dataset = st.selectbox("Dataset", QUICK_DATASETS, key="lc_dataset",
                           help="; ".join(f"{n}: {data.DATASETS[n]}" for n in QUICK_DATASETS))
    width = st.select_slider("Channels (width)", WIDTHS, value=32, key="lc_width")
    depth = st.slider("Blocks (depth)", 2, 12, 6, key="lc_depth")
    k = st.slider("Kernel size k", 3, 15, 9, step=2, key="lc_k")
    patch = st.number_input("Patch size", 1, 8, 2, step=1, key="lc_patch")
    epochs = st.number_input("Epochs", 1, 20, 2, step=1, key="lc_epochs")
    st.caption("ConvMixer with PyTorch's default init, AdamW one-cycle. The default takes a minute "
               "or two on a 2-core CPU; its deeper layers learn wider covariances already.")
    return train.TrainConfig(dataset=dataset, model=models.convmixer_spec(width, depth), kernel_size=k,
                             patch_size=int(patch), epochs=int(epochs), init="default")


def source_sidebar():
    """Sidebar: where the covariances come from. Returns ("run", id), ("upload", file, arch),
    ("quick", config) or None."""
    runs = saved_runs()
    st.header("Source")
    if "lc_source" not in st.session_state:
        st.session_state.lc_source = SOURCES[0] if runs else SOURCES[1]
    source = st.radio("Learned covariances from", SOURCES, key="lc_source")
    if source == SOURCES[0]:
        if not runs:
            st.caption("No saved run with trained filters yet: train a quick run or use the Training Lab.")
            return None
        wanted = st.session_state.pop("lc_select_run", None)
        if wanted in runs.values():
            st.session_state.lc_run = next(label for label, i in runs.items() if i == wanted)
        return ("run", runs[st.selectbox("Run", list(runs), key="lc_run")])
    if source == SOURCES[1]:
        config = quick_run_settings()
        st.button("Train", type="primary", key="lc_train", disabled=background.running(SLOT) is not None,
                  on_click=background.start, args=(SLOT, "train", config),
                  kwargs=dict(batch_size=config.batch_size, label=f"Learned Covariances: {config.model} "
                                                                   f"on {config.dataset}"))
        return ("quick", config)
    if source == SOURCES[5]:
        return pretrained_source.pick()
    if source == SOURCES[4]:
        run_id = attention_section.pick_run()
        return None if run_id is None else ("attention", run_id)
    if source == SOURCES[3]:
        upload = st.file_uploader("Covariances (depth × k² × k²)", type=[s[1:] for s in MATRIX_SUFFIXES],
                                  key="lc_file", help="A .npy, .pt (read weights-only) or .safetensors "
                                  "file: what this page's download or `learned --out` writes, or one "
                                  "k² × k² matrix.")
        return None if upload is None else ("file", upload)
    chosen = checkpoint_uploader("lc")
    return None if chosen is None else ("upload", *chosen)


def quick_run_area() -> tuple | None:
    """Progress of the quick run; when it has finished, its saved run."""
    background.show_message(SLOT)
    if background.running(SLOT) is not None:
        background.progress(SLOT, what="Training",
                          live=lambda events: st.plotly_chart(
                              curves.loss_figure(lab.curves_from_events(events), height=260), **CHART,
                              key="lc_live_loss"))
        return None
    if background.others_running(SLOT):
        background.busy_notice(SLOT)
    done = background.finished(SLOT)
    if done is None:
        st.info("Press **Train** in the sidebar. The covariances of the trained run appear here, and the "
                "run is saved so you can come back to it under *A saved run*.")
        return None
    status, _ = done
    if status.state != "done" or status.result_id is None:
        st.warning(f"The quick run did not finish ({status.state}): {status.message}")
        return None
    return ("run", status.result_id)


def covariances_from_upload(data: bytes, name: str, *, max_bytes: int) -> learned_sets.LearnedSet:
    """learned_sets.learned_from_matrix_file, refusing filters too small to analyse (uploads.too_small_kernel)."""
    learned = learned_sets.learned_from_matrix_file(data, name, max_bytes=max_bytes)
    if (too_small := too_small_kernel(name, learned.kernel_size)) is not None:
        raise ValueError(f"This file cannot be used: {too_small}.")
    return learned


def layer_title(i: int, name: str, fit: dict) -> str:
    return f"{i + 1}: σ = {fit['sigma']:.2f}, r = {fit['r']:.2f}"


def layers_section(learned: learned_sets.LearnedSet, key: str, fits: list) -> None:
    """Every layer's covariance (tiled) and its average by pixel offset."""
    st.subheader("Every layer's learned covariance")
    titles = [layer_title(i, n, f) for i, (n, f) in enumerate(zip(learned.layer_names, fits))]
    st.plotly_chart(layers_figure(key, learned, titles), **CHART)
    k = learned.kernel_size
    view = (f"The centre pixel's block ({k // 2}, {k // 2}) of each layer (at k = {k} the tiled view has more "
            "cells than a panel has pixels)" if k > TILE_LINES_MAX_K
            else "Tiled view (tile (i, j) shows how pixel (i, j) co-varies with every pixel)")
    st.caption(view + ", each layer "
               "divided by its mean variance. Titles: the σ of the closed-form Gaussian that fits the "
               "layer best, and how well it fits (Pearson r over all entries; 1 = exactly Gaussian).")
    short_titles = [t.split(",")[0] for t in titles]
    depth = learned.depth
    profiles = figures.offset_profile_figure(profiles_of(key, learned), short_titles, columns=min(depth, 8),
                                             panel_height=150 if depth > 8 else 190)
    st.plotly_chart(profiles, **CHART)
    st.caption("The same covariances averaged over all pixel pairs at each offset (centre: a pixel with "
               "itself, 1 = the variance). The tiles above are noisy when a layer has few channels; "
               "this average shows the bump each one holds, and how it widens with depth.")


def sigma_section(learned: learned_sets.LearnedSet, fits: list) -> None:
    """Fitted σ per layer against the closed form's schedule, with the table of fits."""
    k, depth = learned.kernel_size, learned.depth
    left, right = st.columns([1.2, 1], gap="medium")
    first, last = learned_sets.fitted_schedule(fits)
    schedule = learned_sets.closed_form_schedule(k, depth)
    with left:
        st.plotly_chart(figures.sigma_depth_figure(fits, schedule, fitted_line=(first, last)), **CHART)
    with right:
        table = pd.DataFrame([{"layer": f"{f['layer']}: {name}", "fitted σ": f["sigma"], "r": f["r"]}
                              for f, name in zip(fits, learned.layer_names)])
        st.dataframe(table.style.format({"fitted σ": "{:.2f}", "r": "{:.2f}"}), hide_index=True,
                     height=min(38 + 35 * len(table), 320))
        st.caption(f"In trained ConvMixers σ grows with depth. The straight line through these layers "
                   f"runs from σ = {first:.2f} to {last:.2f}; the Gaussian init's default schedule "
                   f"(dashed) runs from {schedule[0]:g} to {schedule[-1]:.3g}. Use the fitted values as "
                   "σ_first / σ_last in the Training Lab to imitate this network.")


def closed_form_section(learned: learned_sets.LearnedSet, fits: list) -> None:
    """One layer beside the closed form that fits it, and their difference."""
    st.subheader("One layer: learned vs closed form")
    depth = learned.depth
    layer = st.slider("Layer", 1, depth, key="lc_layer") - 1 if depth > 1 else 0
    fit = fits[layer]
    S, closed, diff = learned_sets.closed_form_beside(learned.covariances[layer], fit["sigma"])
    st.plotly_chart(figures.closed_form_figure(S, closed, diff, sigma=fit["sigma"], r=fit["r"],
                                               layer=f"layer {layer + 1}, {learned.layer_names[layer]}"),
                    **CHART)
    opened, min_r = learned_sets.most_structured_layer(fits), learned_sets.STRUCTURED_MIN_R
    why = (f"the widest bump the closed form fits (the largest fitted σ with r ≥ {min_r:g})"
           if fits[opened]["r"] >= min_r else f"the best fit (no layer's r reaches {min_r:g})")
    st.caption(f"The page opens on layer {opened + 1}, {why}. "
               "Tiled views; hover a cell for its pixel pair. Learned and closed form are both scaled "
               "to unit mean diagonal and share a colour scale. The difference shows what the closed "
               "form misses, often a negative ring around each pixel's bump.")


def transfer_section(learned: learned_sets.LearnedSet, key: str, name_hint: str) -> None:
    """The set resized to another kernel size and depth: preview, what it does to σ, use and download."""
    k = learned.kernel_size
    st.subheader("Transfer preview and use as init")
    st.markdown("Resize the learned covariances to another kernel size (interpolating every axis of "
                "the block tensor, then the nearest PSD matrix) and depth (layer l′ takes the "
                "covariance at the same relative depth), as the *learned* init does for any model.")
    c1, c2 = st.columns(2)
    max_k = max(min(31, settings.max_kernel_size()), k)
    new_k = c1.slider("Kernel size k′", 3, max_k, step=2 if k % 2 else 1, key="lc_new_k")
    new_depth = c2.slider("Depth L′", 1, 32, key="lc_new_depth")
    st.plotly_chart(transfer_figure(key, learned, new_k, new_depth), **CHART)
    if new_depth >= 24:
        st.caption(f"One layer in {new_depth // 12} of the {new_depth} shown.")
    if new_k > TILE_LINES_MAX_K:
        st.caption(f"At k′ = {new_k} each panel shows the centre pixel's block ({new_k // 2}, {new_k // 2}): "
                   "the tiled view has more cells than a panel has pixels.")
    if new_k != k:
        source, moved = fits_of(key, learned), transferred_fits(key, learned, new_k, new_depth)
        st.caption(f"Resizing stretches the {k} × {k} window over {new_k} × {new_k} pixels, so σ, counted in "
                   f"pixels, grows by about (k′ − 1)/(k − 1) = {(new_k - 1) / (k - 1):.2f} for wide bumps "
                   f"and more for narrow ones: here layer 1 goes from σ {source[0]['sigma']:.2f} to "
                   f"{moved[0]['sigma']:.2f} px and the last from {source[-1]['sigma']:.2f} to "
                   f"{moved[-1]['sigma']:.2f} px. To keep σ in pixels instead, give the Gaussian init the "
                   "fitted schedule above (σ first → σ last).")
    save_and_download(learned, key, re.sub(r"[^A-Za-z0-9_.\-]+", "-",
                                           f"{name_hint}-k{new_k}-d{new_depth}").strip("-")[:60], new_k, new_depth)


def save_and_download(learned: learned_sets.LearnedSet, key: str, default_name: str, new_k: int,
                      new_depth: int) -> None:
    """"Use as init" (a named covariance set for the Training Lab) and the .npy / .pt downloads."""
    n1, n2 = st.columns([2, 1], vertical_alignment="bottom")
    name = n1.text_input("Name for the Training Lab", default_name, key=f"lc_set_name_{default_name}",
                         max_chars=60)
    if n2.button("Use as init", key="lc_use", type="primary"):
        path = learned_sets.save_covariance_set(name, transferred(key, learned, new_k, new_depth),
                                                source=learned.source)
        lab_sidebar.preselect_learned(lab.covariance_set_label(
            learned_sets.CovarianceSetInfo(path.stem, new_k, new_depth, learned.source)))
        st.success(f"Saved as covariance set '{name.strip()}'. Open the Training Lab and add *Learned "
                   "covariance* to the init schemes: this set is preselected.")
    d1, d2, d3 = st.columns([1, 1, 3], vertical_alignment="center")
    for column, fmt in ((d1, "npy"), (d2, "pt")):
        column.download_button(f"Download .{fmt}", partial(transferred_file, key, learned, new_k, new_depth, fmt),
                               file_name=f"{default_name}.{fmt}", key=f"lc_download_{fmt}")
    d3.caption(f"The {new_depth} × {new_k * new_k} × {new_k * new_k} covariances (float64) for your own code: "
               "`init_depthwise_(model, \"learned\", covariances=list(torch.load(path, weights_only=True)))`, "
               "or `python -m convcov_core compare --learned-from path`.")


def analysis(learned: learned_sets.LearnedSet, key: str, name_hint: str, reach_warning: str | None = None) -> None:
    """Everything shown for one set of learned covariances; `key` identifies it for the caches."""
    k, depth = learned.kernel_size, learned.depth
    if (too_small := too_small_kernel(learned.source, k)) is not None:  # a checkpoint of 1 x 1 filters
        raise ValueError(f"{too_small}.")
    fits = fits_of(key, learned)
    reset_when_changed("lc_shown", key, dict(lc_layer=learned_sets.most_structured_layer(fits) + 1,
                                             lc_new_k=k, lc_new_depth=depth))
    st.markdown(f"**Source:** {learned.source}. {depth} depthwise layer(s), {k} × {k} filters.")
    if reach_warning:
        st.warning(reach_warning)
    layers_section(learned, key, fits)
    sigma_section(learned, fits)
    closed_form_section(learned, fits)
    transfer_section(learned, key, name_hint)


st.title("Learned Covariances")
st.markdown(
    "Trained depthwise filters are not independent pixels: stack one layer's filters and their "
    "covariance shows a smooth bump around each pixel, close to the closed-form Gaussian, that widens "
    "with depth. Pick a trained network (a saved run, a quick run trained here, your own "
    "checkpoint, or a pretrained timm model) to see it layer by layer, compare it with the closed form, "
    "and reuse it as an init."
)

with shown_errors():
    with st.sidebar:
        chosen = source_sidebar()
    if chosen is not None and chosen[0] == "quick":
        chosen = quick_run_area()
    if chosen is None:
        if st.session_state.get("lc_source") == SOURCES[2]:
            st.info("Upload a checkpoint in the sidebar: a .safetensors file or a torch.save file of "
                    "model.state_dict() of our ConvMixer, a timm ConvMixer or a timm ConvNeXt.")
        elif st.session_state.get("lc_source") == SOURCES[3]:
            st.info("Upload covariances in the sidebar: depth × k² × k² (one k² × k² matrix per layer, "
                    "first layer first), as this page's download or `python -m convcov_core learned --out` "
                    "writes them.")
        elif st.session_state.get("lc_source") == SOURCES[4]:
            st.info("No saved Vision Transformer run with its weights yet. Run "
                    f"`{attention_section.MEASURE_COMMAND}` to save some.")
        elif st.session_state.get("lc_source") == SOURCES[0]:
            st.info("No saved run with trained filters yet. Choose *A quick run trained here* in the "
                    "sidebar, or run a comparison with trained filters in the Training Lab.")
        st.stop()
    if chosen[0] == "attention":
        attention_section.show(chosen[1])
    elif chosen[0] == "timm":
        _, name, weights = chosen
        analysis(pretrained_source.learned_set(name, weights), f"timm:{name}:{weights}",
                 re.sub(r"[^A-Za-z0-9]+", "-", name.split(".")[0]))
    elif chosen[0] == "run":
        store = run_store()
        learned = run_set(str(store.path), chosen[1])
        analysis(learned, f"{store.path}#{chosen[1]}", f"run{chosen[1]}",
                 run_reach_warning(str(store.path), chosen[1]))
    else:
        if chosen[0] == "file":
            upload, arch = chosen[1], None
            learned = read_upload_once("lc_file_memo", upload, covariances_from_upload, what="the covariances")
            if bad := non_psd_layers(upload.file_id, learned):
                st.warning(f"Layer(s) {', '.join(map(str, bad))} of {upload.name} are not positive "
                           "semi-definite: the transfer and the learned init use their nearest PSD matrix.")
        else:
            _, upload, arch = chosen
            learned = read_upload_once("lc_upload_memo", upload, learned_sets.learned_from_checkpoint, arch)
        hint = re.sub(r"[^A-Za-z0-9]+", "-", upload.name.rsplit(".", 1)[0])[:30] or "upload"
        analysis(learned, f"{upload.file_id}:{arch}", hint)
