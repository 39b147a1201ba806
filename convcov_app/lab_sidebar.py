"""The Training Lab's sidebar: the setup form (preset, dataset, model, init schemes, training budget)
with the presets that fill it in, and the visitor's own setup kept across pages."""

from __future__ import annotations

import streamlit as st

from convcov_core import data, init, models

from . import lab, lab_form, labels
from .store import example_source, learned_sources
from .support import present_datasets

KEPT = "lab_kept_setup"  # (preset, setup) of this visit: widget values are dropped on other pages
WANTED_SOURCE = "lab_wanted_source"  # a learned source another page offers (preselect_learned)


def apply_setup(setup: lab.LabSetup) -> None:
    """Put a setup's values into the widgets."""
    st.session_state.update(lab_form.widget_values(setup, st.session_state.get("lab_k", 9)))


def apply_preset(store_ok: bool) -> None:
    setup, note = lab.preset_setup(st.session_state.lab_preset, present_datasets())
    apply_setup(setup)
    # presets with a learned scheme learn from the bundled example (in the store, when it can be read)
    if init.needing_source(setup.inits) and store_ok:
        example = example_source(learned_sources())
        if example is not None:
            st.session_state.lab_learned = example
        else:  # shown once, above the setup it left out
            st.session_state.lab_preset_warning = lab_form.EXAMPLE_GONE
    st.session_state.lab_preset_note = note


def apply_model_sizes() -> None:
    """A model preset brings its own kernel and patch size; a custom ConvMixer keeps the ones set."""
    sizes = lab_form.preset_sizes(st.session_state.lab_model, st.session_state.get("lab_k", 9))
    if sizes is None:
        for key, value in lab_form.CUSTOM_DEFAULTS.items():
            st.session_state.setdefault(key, value)
    else:
        st.session_state.update(sizes)


def model_widgets(datasets: dict, max_k: int, store_ok: bool) -> tuple[str, str, int, int]:
    """Preset, dataset, model, kernel and patch size: (dataset, model spec, k, patch)."""
    st.header("Setup")
    st.selectbox("Start from a preset", list(lab.PRESETS), key="lab_preset", on_change=apply_preset,
                 args=(store_ok,), help="Fills in every setting below; change any of them to make your own.")
    dataset = st.selectbox("Dataset", list(datasets), key="lab_dataset",
                           help="; ".join(f"{n}: {data.DATASETS.get(n, 'image folder')}" for n in datasets))
    choice = st.selectbox("Model", lab_form.MODEL_CHOICES, key="lab_model", on_change=apply_model_sizes)
    if choice == lab_form.CUSTOM_MODEL:
        width = st.select_slider("Channels (width)", lab_form.WIDTHS, key="lab_width")
        depth = st.slider("Blocks (depth)", 1, 16, key="lab_depth")
        spatial = st.radio("Spatial filters", list(lab_form.SPATIAL_FILTERS), key="lab_spatial",
                           help=lab_form.NIFF_HELP)
        spec = models.convmixer_spec(width, depth, lab_form.SPATIAL_FILTERS[spatial])
    else:
        spec = models.MODEL_PRESETS[choice][0]
        st.caption(models.MODEL_PRESETS[choice][3])
    k = None  # a model without depthwise filters (a ViT) has no kernel size to choose
    if choice == lab_form.CUSTOM_MODEL or models.MODEL_PRESETS[choice][1] is not None:
        niff = models.parse_spec(spec)["niff"]
        k = st.slider("Window k the NIFF filters' covariances are read in" if niff
                      else "Kernel size k of the depthwise filters", 3, max_k, step=2, key="lab_k",
                      help=lab_form.NIFF_WINDOW_HELP if niff else None)
    patch = st.number_input("Patch size", 1, 16, step=1, key="lab_patch",
                            help="The stem cuts images into p × p patches; larger is faster but coarser.")
    return dataset, spec, k, int(patch)


def preselect_learned(label: str) -> None:
    """Have the learned scheme's source widget open on `label` (a set just saved on Learned Covariances)."""
    st.session_state[WANTED_SOURCE] = label


def learned_source(sources: dict) -> tuple:
    """The learned scheme's covariances (preselect_learned's choice when the visitor has made none)."""
    wanted = st.session_state.get(WANTED_SOURCE)
    if wanted in sources and st.session_state.get("lab_learned") not in sources:
        st.session_state.lab_learned = wanted
    return sources[st.selectbox("Learned covariances from", list(sources), key="lab_learned",
                                help="Resized to this model's kernel size and depth.")]


def init_widgets_for(k: int | None, niff: bool, store_ok: bool) -> tuple:
    """The init schemes, the Gaussian schedule, the learned source and the filter mode:
    (inits, sigma_first, sigma_last, learned source or None, filters). k None: a model without
    depthwise filters (a ViT), its weights all trained."""
    st.header("Init schemes")
    sources = learned_sources(with_runs=store_ok)
    offered = lab_form.offered_schemes(k, niff, sources)
    st.session_state.lab_inits = [v for v in st.session_state.lab_inits if v in offered]
    chosen = st.multiselect("Compare (the first one is the reference)", offered, key="lab_inits")
    inits = tuple(lab_form.SCHEME_BY_LABEL[label] for label in chosen)
    sigma_first = sigma_last = None
    if users := init.using_sigma(inits):
        first, last = init.default_sigmas(k)
        if st.toggle(f"Custom σ schedule ({', '.join(users)})", key="lab_custom_sigma",
                     help=f"Default: σ grows linearly over depth from {first:g} to {last:g} (k / 3)."):
            sigma_first = st.select_slider("σ_first (first layer)", labels.SIGMA_OPTIONS, key="lab_sigma_first")
            sigma_last = st.select_slider("σ_last (last layer)", labels.SIGMA_OPTIONS, key="lab_sigma_last")
        else:
            st.caption(f"{', '.join(users)}: σ from {first:g} (first layer) to {last:.3g} (last layer).")
    source = learned_source(sources) if init.needing_source(inits) else None
    if k is None:
        st.caption(" ".join(map(labels.scheme_help, init.scheme_names("model"))))
        return inits, sigma_first, sigma_last, source, "trained"
    if niff:
        st.caption(lab_form.NIFF_INIT_NOTE)
    elif not sources:
        st.caption("A *learned* scheme appears once a run with saved covariances exists (or a set "
                   "made on the Learned Covariances page).")
    filters = st.radio("Depthwise filters", list(lab.FILTER_MODES), key="lab_filters", help=lab_form.FROZEN_HELP)
    return inits, sigma_first, sigma_last, source, filters


def training_widgets() -> tuple[dict, int, bool]:
    """Epochs, batch size, learning rate, step cap and precision (TrainConfig fields), seeds, and
    whether the runs train together."""
    st.header("Training")
    epochs = st.number_input("Epochs", 1, 100, step=1, key="lab_epochs")
    batch = st.select_slider("Batch size", lab_form.BATCH_SIZES, key="lab_batch")
    lr = st.select_slider("Peak learning rate (AdamW, one-cycle)", lab_form.LEARNING_RATES, key="lab_lr")
    n_seeds = st.number_input("Seeds (runs per variant)", 1, 10, step=1, key="lab_seeds",
                              help="Seeds 0, 1, ...: every variant runs once per seed, and the "
                                   "differences are paired by seed.")
    with st.expander("Advanced"):
        max_steps = st.number_input("Stop each run after this many steps (0: whole epochs)", 0, 100_000,
                                    step=10, key="lab_max_steps")
        precision = st.radio("Precision", ["auto", "fp32"], key="lab_precision", horizontal=True,
                             help=lab_form.PRECISION_HELP)
        ensemble = st.checkbox("Train the runs together as one network", key="lab_ensemble",
                               help=lab_form.ENSEMBLE_HELP)
    return dict(epochs=int(epochs), batch_size=batch, lr=lr, max_steps=int(max_steps) or None,
                precision=precision), int(n_seeds), ensemble


def sidebar(datasets: dict, max_k: int, store_ok: bool) -> tuple[lab.LabSetup, tuple | None]:
    """The setup widgets; returns the setup and the learned-covariance source (if learned is picked)."""
    dataset, spec, k, patch = model_widgets(datasets, max_k, store_ok)
    niff = bool(models.parse_spec(spec)["niff"])
    inits, sigma_first, sigma_last, source, filters = init_widgets_for(k, niff, store_ok)
    budget, n_seeds, ensemble = training_widgets()
    training = lab.lab_training(dataset=dataset, model=spec, kernel_size=k, patch_size=patch, **budget)
    setup = lab.LabSetup(training, inits=inits, filters=filters, n_seeds=n_seeds, sigma_first=sigma_first,
                         sigma_last=sigma_last, ensemble=ensemble)
    return setup, source


def init_widgets(store_ok: bool) -> None:
    """First visit: the default preset. Back from another page: the visitor's own setup, unless
    its dataset has gone (then the preset again)."""
    if "lab_preset" not in st.session_state:
        kept = st.session_state.get(KEPT)
        if kept is not None and kept[1].training.dataset in present_datasets():
            st.session_state.lab_preset = kept[0]
            apply_setup(kept[1])
        else:
            st.session_state.lab_preset = lab.QUICK_CPU
            apply_preset(store_ok)
    st.session_state.setdefault("lab_sigma_first", 1.0)
    st.session_state.setdefault("lab_sigma_last", 5.0)


def keep(setup: lab.LabSetup) -> None:
    """Keep this visit's preset and setup for the next visit of the page."""
    st.session_state[KEPT] = (st.session_state.lab_preset, setup)
