"""The Convolutional Neural Feature Ansatz: filter covariance WᵀW vs the patch-AGOP, trained and at init."""

import functools

import streamlit as st

from convcov_app import ansatz, ansatz_analysis, background, labels
from convcov_app.navigation import page_setup
from convcov_app.store import run_store
from convcov_app.support import load_note, present_datasets, shown_errors, stored_runs_or_warning
from convcov_app.uploads import checkpoint_uploader, read_upload_once
from convcov_core import examples, model_pairs
from convcov_core.sqlite_file import StoreUnreadable

page_setup("Feature Ansatz")

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
    session (st.session_state.fa_trained = (job id, ModelPair))."""
    mine = background.running(SLOT)
    button, about = st.columns([1, 5], vertical_alignment="center")
    button.button("Train", key="fa_train", type="primary", on_click=start_training,
                  args=(config, init_choice == ansatz.SMALL_INIT), disabled=mine is not None)
    about.caption(ansatz.training_caption(config, init_choice, epochs) + load_note())
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
        if st.session_state.get("fa_trained", (None,))[0] != status.id:
            st.session_state.fa_trained = (status.id, result)
            stored_runs.clear()  # the run just saved joins the saved-run list
            saved_cnn.clear()
    elif status.state == "cancelled":
        st.info("Training cancelled.")
    else:
        st.error(f"Training failed: {status.message}")


def cnn_widgets() -> tuple:
    """The small CNN to train: (its config, the init choice, epochs)."""
    dataset = st.selectbox("Dataset", model_pairs.CNN_DATASETS, key="fa_cnn_dataset",
                           help="noisy-bars: a short white or black bar in noise; noisy-mnist: "
                                "a digit at a random place on a larger noisy canvas.")
    noise = st.slider("Background noise (std)", 0.0, 2.0, 0.5, step=0.1, key="fa_noise",
                      disabled=dataset not in model_pairs.NOISY_DATASETS)
    layers = st.slider("Conv layers", 1, 4, 3, key="fa_layers")
    width = st.select_slider("Channels per layer", ansatz.WIDTHS, value=32, key="fa_width")
    kernel = st.radio("Filters", list(ansatz.KERNELS), key="fa_kernel")
    init_choice = st.radio("Initial weights", ansatz.INITS, key="fa_init", help=ansatz.INIT_HELP)
    epochs = st.slider("Epochs", 1, 10, 2, key="fa_epochs")
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, step=1, key="fa_seed")
    config = model_pairs.cnn_config(dataset, noise=noise, layers=layers, width=width,
                                    kernel_size=ansatz.KERNELS[kernel], epochs=epochs, seed=int(seed))
    return config, init_choice, epochs


def sidebar(saved: list) -> tuple:
    """(source, what it needs: the CNN's (config, init, epochs), a run id or (upload, AGOP dataset)),
    the number of AGOP images and the outputs whose gradients count."""
    st.header("Model")
    source = st.radio("Analyse", [s for s in ansatz.SOURCES if saved or s != ansatz.SAVED], key="fa_source")
    if source == ansatz.CNN:
        chosen = cnn_widgets()
    elif source == ansatz.SAVED:
        by_label = {labels.run_label(summary): summary.id for summary in saved}
        chosen = by_label[st.selectbox("Saved run", list(by_label), key="fa_run")]
    else:
        chosen = (checkpoint_uploader("fa"),
                  st.selectbox("Images for the AGOP", list(present_datasets()), key="fa_dataset",
                               help="Test images the patch-AGOPs are computed on; they must have the channels "
                                    "the model takes (textures come in colour for a 3-channel model)."))
    st.header("Analysis")
    n_images = st.select_slider("Test images for the AGOP", ansatz.IMAGE_COUNTS, value=128, key="fa_n_images")
    outputs = st.radio("Gradients of", ansatz.OUTPUTS, key="fa_outputs",
                       help="All outputs: M sums the AGOP of every class score (exact, one backward pass per "
                            "class). Predicted class: one backward pass.")
    return source, chosen, n_images, outputs


def small_cnn(config, init_choice: str, epochs: int) -> tuple | None:
    """The page's CNN: (pair, memo key, whether it is this CNN rather than the bundled example), or None."""
    training_area(config, init_choice, epochs)
    earlier = saved_cnn(config, init_choice == ansatz.SMALL_INIT)
    if "fa_trained" in st.session_state:
        job_id, pair = st.session_state.fa_trained
        return pair, ("job", job_id), True
    if earlier is not None:
        st.caption(f"Trained earlier on this server with these settings (run #{earlier}); **Train** "
                   "trains it again.")
        return run_pair(earlier), ("run", earlier), True
    if (example := bundled_example_id()) is not None:
        st.info(ansatz.EXAMPLE_SHOWN)
        return run_pair(example), ("run", example), False
    if background.running(SLOT) is None:
        st.info("Press **Train** to train the small CNN; the analysis appears here when it is done.")
    return None


def uploaded_pair(uploaded, agop_dataset: str) -> tuple | None:
    """An uploaded checkpoint beside its architecture at init: (pair, memo key, False), or None."""
    if uploaded is None:
        st.info(ansatz.UPLOAD_NEEDED)
        return None
    upload, architecture = uploaded
    pair = read_upload_once("fa_upload_memo", upload, model_pairs.pair_from_checkpoint, architecture, agop_dataset)
    return pair, ("upload", upload.file_id, architecture, agop_dataset), False


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
        source, chosen, n_images, outputs = sidebar(saved)
    if source == ansatz.CNN:
        shown = small_cnn(*chosen)
    elif source == ansatz.SAVED:
        shown = run_pair(chosen), ("run", chosen), False
    else:
        shown = uploaded_pair(*chosen)
    if shown is None:
        st.stop()
    pair, key, own_cnn = shown
    ansatz_analysis.show(pair, key, n_images, outputs, small_cnn=own_cnn)
