"""The Convolutional Neural Feature Ansatz: filter covariance WᵀW vs the patch-AGOP, trained and at init."""

import functools

import pandas as pd
import streamlit as st

from convcov_app import background, labels, rfm_section
from convcov_app.navigation import page_setup
from convcov_app.store import run_store
from convcov_app.support import (
    CHART,
    load_note,
    present_datasets,
    reset_when_changed,
    shown_errors,
    stored_runs_or_warning,
)
from convcov_app.uploads import checkpoint_uploader, read_upload_once
from convcov_core import cnfa, examples, model_pairs
from convcov_core.plots import analysis as figures
from convcov_core.sqlite_file import StoreUnreadable

page_setup("Feature Ansatz")

KERNELS = {"5 × 5, then 3 × 3": None, "3 × 3": 3, "5 × 5": 5, "7 × 7": 7}
SOURCES = ("A small CNN trained here", "A saved run (weights needed)", "An uploaded checkpoint")
INITS = ("small normal (as in the paper)", "PyTorch default")
IMAGE_COUNTS = (16, 32, 64, 128, 256, 512)
NATURAL_SIZE = 112  # pixels: natural pictures are shown larger than the 28 x 28 training images
MEMO_SIZE = 4
SLOT = "feature_ansatz"  # this page's background-job slot (convcov_app.background)


@st.cache_data(max_entries=8, show_spinner=False, ttl=60)
def stored_runs() -> list:
    """Saved runs that kept their weights (the analysis needs the trained model)."""
    return [summary for summary in run_store().list() if summary.has_weights]


@st.cache_data(max_entries=8, show_spinner=False, ttl=60)
def saved_cnn(config, small_init: bool) -> int | None:
    """model_pairs.saved_cnn: a CNN saved with these settings, shown until this visitor trains one; None when
    the run store cannot be read (the saved-run list above says so)."""
    try:
        return model_pairs.saved_cnn(config, small_init)
    except Exception:
        return None


def bundled_example_id() -> int | None:
    """The bundled example's run id; None when it is not stored or the run store cannot be read (the
    saved-run list says so)."""
    try:
        return examples.stored_id(run_store())
    except StoreUnreadable:
        return None


@st.cache_data(max_entries=4, show_spinner="Loading the run's weights…")
def run_pair(run_id: int) -> model_pairs.ModelPair:
    return model_pairs.pair_from_run(run_store().get(run_id))


def start_training(config, small_init: bool) -> None:
    background.start(SLOT, "task", functools.partial(model_pairs.train_cnn_and_save, config, small_init=small_init),
                   samples=model_pairs.training_images(config), batch_size=config.batch_size,
                   label=f"Feature Ansatz: {model_pairs.describe_model(config)} on {config.dataset}")


def training_area(config, init_choice: str, epochs: int) -> None:
    """The Train button, the job's progress, and how it ended; a finished model is kept in the
    session (st.session_state.trained = (job id, ModelPair))."""
    mine = background.running(SLOT)
    button, about = st.columns([1, 5], vertical_alignment="center")
    button.button("Train", key="train", type="primary", on_click=start_training,
                  args=(config, init_choice == INITS[0]), disabled=mine is not None)
    about.caption(f"{model_pairs.describe_model(config)}, {init_choice} init, "
                  f"on {model_pairs.describe_dataset(config)}, "
                  f"{epochs} epoch(s): conv + ReLU + 2 × 2 max pooling blocks, AdamW. Change it in "
                  "the sidebar. Training runs in the background, its progress bar shows the pace "
                  "measured here; the trained model is saved: find it later under *A saved run*."
                  + load_note())
    background.show_message(SLOT)
    if mine is None and background.others_running(SLOT):
        background.busy_notice(SLOT)
    if mine is not None:
        background.progress(SLOT)
        return
    done = background.finished(SLOT)
    if done is None:
        return
    status, result = done
    if status.state == "done" and result is not None:
        if st.session_state.get("trained", (None,))[0] != status.id:
            st.session_state.trained = (status.id, result)
            stored_runs.clear()  # the run just saved joins the saved-run list
            saved_cnn.clear()
    elif status.state == "cancelled":
        st.info("Training cancelled.")
    else:
        st.error(f"Training failed: {status.message}")


@st.cache_resource
def saved_run_memo() -> dict:
    """CNFA comparisons of saved runs (their weights never change), shared by every visitor."""
    return {}


def cnfa_comparison(key, pair: model_pairs.ModelPair, n_images: int, outputs) -> cnfa.CNFAComparison:
    """The trained-vs-init CNFA comparison, computed once per model and settings: in this session
    for a model trained here, on this server for a saved run."""
    memo = saved_run_memo() if key[0] == "run" else st.session_state.setdefault("cnfa_memo", {})
    memo_key = (key, n_images, outputs)
    comparison = memo.get(memo_key)
    if comparison is None:
        text = f"Patch-AGOPs of the trained model and at init on {n_images} test images…"
        bar = st.progress(0.0, text=text)
        inputs = cnfa.analysis_images(pair.config, n_images)
        comparison = memo[memo_key] = cnfa.compare_cnfa(pair, inputs, outputs=outputs,
                                                      progress=lambda done: bar.progress(done, text=text))
        bar.empty()
        for old in list(memo)[:-MEMO_SIZE]:
            memo.pop(old, None)
    return comparison


@st.cache_resource(max_entries=16, show_spinner=False)  # read-only figure: no unpickling
def feature_maps_figure(key, which: str, matrix: str, layers: tuple, index: int, picture: str, *,
                        _pair: model_pairs.ModelPair, _comparison: cnfa.CNFAComparison):
    """Feature maps of test image #index and a natural picture under each layer's M; `key` names
    the model and the comparison's settings (the key of cnfa_comparison()'s memo)."""
    model = _pair.trained if which == "trained" else _pair.initial
    rows = {r.name: r for r in (_comparison.trained if which == "trained" else _comparison.initial)}
    matrices = {name: getattr(rows[name], matrix) for name in layers}
    images = [cnfa.analysis_images(_pair.config, index + 1)[index],
              cnfa.natural_images([picture], NATURAL_SIZE, _pair.info)[0]]
    maps = [[m.numpy() for m in cnfa.layer_feature_maps(model, matrices, image).values()] for image in images]
    return figures.feature_map_figure([cnfa.to_pixels(image, _pair.info) for image in images], maps,
                                      [f"test image #{index}", picture], list(layers))


st.title("Feature Ansatz")
st.markdown(
    "The *Convolutional Neural Feature Ansatz* says that a trained conv layer's filter covariance, "
    "the CNFM WᵀW, is proportional to the **patch-AGOP** M: the average outer product of the "
    "gradients of the network's outputs with respect to the patches the layer reads. Train a small "
    "CNN here (or pick a saved run, or upload a checkpoint of your own) and check it layer by layer "
    "against the same network at initialization, then look at what M selects: its top "
    "eigenvectors and its feature maps."
)

with shown_errors():
    saved = stored_runs_or_warning(stored_runs)
    with st.sidebar:
        st.header("Model")
        source = st.radio("Analyse", [s for s in SOURCES if saved or s != SOURCES[1]], key="source")
        if source == SOURCES[0]:
            dataset = st.selectbox("Dataset", model_pairs.CNN_DATASETS, key="dataset",
                                   help="noisy-bars: a short white or black bar in noise; noisy-mnist: "
                                        "a digit at a random place on a larger noisy canvas.")
            noise = st.slider("Background noise (std)", 0.0, 2.0, 0.5, step=0.1, key="noise",
                              disabled=dataset not in model_pairs.NOISY_DATASETS)
            layers = st.slider("Conv layers", 1, 4, 3, key="layers")
            width = st.select_slider("Channels per layer", (8, 16, 32, 64), value=32, key="width")
            kernel = st.radio("Filters", list(KERNELS), key="kernel")
            init_choice = st.radio("Initial weights", INITS, key="init",
                                   help="Small normal: conv weights N(0, 0.005²) in the first layer and "
                                        "N(0, 0.01²) after, as in the Feature Ansatz paper, so the "
                                        "trained filters are learned rather than left over from "
                                        "the init.")
            epochs = st.slider("Epochs", 1, 10, 2, key="epochs")
            seed = st.number_input("Seed", 0, 2**31 - 1, 0, step=1, key="seed")
            config = model_pairs.cnn_config(dataset, noise=noise, layers=layers, width=width,
                                   kernel_size=KERNELS[kernel], epochs=epochs, seed=int(seed))
        elif source == SOURCES[1]:
            by_label = {labels.run_label(summary): summary.id for summary in saved}
            run_id = by_label[st.selectbox("Saved run", list(by_label), key="run")]
        else:
            uploaded = checkpoint_uploader("fa")
            agop_dataset = st.selectbox("Images for the AGOP", list(present_datasets()), key="fa_dataset",
                                        help="Test images the patch-AGOPs are computed on; they must "
                                             "have the channels the model takes (textures come in "
                                             "colour for a 3-channel model).")
        st.header("Analysis")
        n_images = st.select_slider("Test images for the AGOP", IMAGE_COUNTS, value=128,
                                    key="n_images")
        outputs = st.radio("Gradients of", ("all outputs", "the predicted class"), key="outputs",
                           help="All outputs: M sums the AGOP of every class score (exact, one "
                                "backward pass per class). Predicted class: one backward pass.")

    showing_example = False
    if source == SOURCES[0]:
        training_area(config, init_choice, epochs)
        earlier = saved_cnn(config, init_choice == INITS[0])
        if "trained" in st.session_state:
            job_id, pair = st.session_state.trained
            key = ("job", job_id)
        elif earlier is not None:
            pair, key = run_pair(earlier), ("run", earlier)
            st.caption(f"Trained earlier on this server with these settings (run #{earlier}); **Train** "
                       "trains it again.")
        elif (example := bundled_example_id()) is not None:
            pair, key = run_pair(example), ("run", example)
            showing_example = True
            st.info("Until you train the small CNN (**Train**), this is the analysis of the bundled "
                    "example network, the trained ConvMixer the other pages open on.")
        else:
            if background.running(SLOT) is None:
                st.info("Press **Train** to train the small CNN; the analysis appears here when it "
                        "is done.")
            st.stop()
    elif source == SOURCES[1]:
        pair = run_pair(run_id)
        key = ("run", run_id)
    else:
        if uploaded is None:
            st.info("Upload a checkpoint in the sidebar: a .safetensors file or a torch.save file of "
                    "a ConvMixer's or a timm ConvNeXt's state dict. Its layers are compared with the "
                    "same architecture at PyTorch's default init (seed 0; the file does not say how "
                    "it was initialized).")
            st.stop()
        upload, architecture = uploaded
        pair = read_upload_once("fa_upload_memo", upload, model_pairs.pair_from_checkpoint, architecture,
                                agop_dataset)
        key = ("upload", upload.file_id, architecture, agop_dataset)

    accuracy = f", test accuracy {pair.test_acc:.1f}%" if pair.test_acc is not None else ""
    st.markdown(f"**Model:** {pair.label}{accuracy}.")
    gradients_of = "all" if outputs == "all outputs" else "predicted"
    comparison = cnfa_comparison(key, pair, n_images, gradients_of)
    table = comparison.table()

    st.subheader("r(AGOP, CNFM) per layer: trained vs at initialization")
    st.dataframe(pd.DataFrame(table).style.format(precision=3), hide_index=True)
    st.plotly_chart(figures.cnfa_bar_figure(table), **CHART)
    st.caption(
        f"Pearson r over all entries of the two matrices, AGOP from {comparison.n_images} test "
        "images. Read the columns together: a high r at init is expected (M = WᵀGW with nearly "
        "isotropic output gradients G is close to a multiple of WᵀW), so the evidence for the "
        "ansatz is r staying high after training although training moved the CNFM far from its "
        "init (a low last column)."
    )

    st.subheader("AGOP and CNFM of one layer")
    names = [row["layer"] for row in table]
    c1, c2, c3 = st.columns(3)
    reset_when_changed("fa_network_shown", key, dict(layer=comparison.first_spatial_layer()))
    layer = c1.selectbox("Layer", names, key="layer")
    which = c2.radio("Model", ("trained", "at initialization"), horizontal=True, key="which")
    operator = c3.radio("Operator M for the views below", ("patch-AGOP", "CNFM"), horizontal=True,
                        key="operator")
    row = comparison.row(layer, "trained" if which == "trained" else "initial")
    channels = row.channels
    st.plotly_chart(figures.matrix_pair_figure(row.agop, row.cnfm, kernel_size=row.kernel_size,
                                               channels=channels, r=row.r), **CHART)
    st.caption("Each matrix divided by its largest |entry|; the ansatz predicts the same pattern in "
               "both. " + ("Tile (i, j) shows how patch pixel (i, j) pairs with every pixel of the "
                           "patch." if channels == 1 else "Entries run over (channel, row, column) "
                                                          "of the patch."))

    st.subheader("Top eigenvectors of M as filters")
    n_vectors = st.slider("Eigenvectors", 1, 16, 8, key="n_vectors")
    matrix = "agop" if operator == "patch-AGOP" else "cnfm"
    shares, vectors = cnfa.eigenfilters(row, matrix, n_vectors)
    st.plotly_chart(figures.eigenfilter_figure(vectors, shares), **CHART)
    st.caption("Titles give each eigenvalue's share of the trace. Edge detectors (light and dark "
               "bands) are what the ansatz predicts for first layers, noise at initialization."
               + (" With the small init on digits the first layer shows them after two epochs; "
                  "PyTorch's default init keeps much of its random start in a short run."
                  if source == SOURCES[0] and not showing_example else "")
               + (" For a layer with several input channels these are the eigenvectors of the "
                  "channel average of its k × k diagonal blocks." if channels > 1 else ""))

    st.subheader("Feature maps ‖M½ patch‖")
    f1, f2, f3 = st.columns(3)
    reset_when_changed("fa_images_shown", (key, comparison.n_images), dict(image=0))
    index = f1.number_input("Test image #", 0, comparison.n_images - 1, step=1, key="image")
    picture = f2.selectbox("Natural image (scikit-image)", cnfa.NATURAL_IMAGES,
                           index=cnfa.NATURAL_IMAGES.index("camera"), key="picture")
    n_layers = 1
    if len(names) > 1:
        reset_when_changed("fa_maps_shown", key, dict(map_layers=min(3, len(names))))
        n_layers = f3.slider("Layers shown", 1, min(4, len(names)), step=1, key="map_layers")
    shown_layers = names[:n_layers]
    maps = feature_maps_figure((key, n_images, gradients_of), which, matrix, tuple(shown_layers),
                               int(index), picture, _pair=pair, _comparison=comparison)
    st.plotly_chart(maps, **CHART)
    st.caption("Each map scaled to its own maximum: bright where M responds strongly to the patch "
               "the layer reads there. Edge detectors trace the strokes of digits and the outlines "
               "of objects; eigenvectors that do not sum to zero also respond to plain brightness "
               "(the sky of the camera picture). On the noisy datasets a trained model dims the "
               "background noise and keeps the signal.")

    rfm_section.show(pair, comparison, int(index))
