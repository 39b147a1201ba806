"""What a trained network learned, layer by layer: fitted σ vs depth, closed form, transfer, use as init."""

import streamlit as st

from convcov_app import attention_section, background, lab, labels, learned, pretrained_source
from convcov_app.learned_analysis import analysis
from convcov_app.navigation import page_setup
from convcov_app.store import run_reach_warning, run_store, runs_with_learned_covariances
from convcov_app.support import CHART, shown_errors
from convcov_app.uploads import checkpoint_uploader, read_upload_once, too_small_kernel
from convcov_core import data, examples, learned_sets, models, train
from convcov_core.matrix_files import MATRIX_SUFFIXES
from convcov_core.plots import curves

page_setup("Learned Covariances")

SLOT = "lc"


@st.cache_data(max_entries=8, show_spinner="Reading the run's covariances…")
def run_set(store_path: str, run_id: int) -> learned_sets.LearnedSet:
    store = run_store()
    bundled = run_id == examples.stored_id(store)
    name = f"the bundled example (run #{run_id})" if bundled else None
    return learned_sets.learned_from_run(store.get(run_id), name=name)


@st.cache_data(max_entries=8, show_spinner=False)
def non_psd_layers(key: str, _learned: learned_sets.LearnedSet) -> list[int]:
    return learned_sets.non_psd_layers(_learned.covariances)


def quick_run_settings() -> train.TrainConfig:
    dataset = st.selectbox("Dataset", learned.QUICK_DATASETS, key="lc_dataset",
                           help="; ".join(f"{n}: {data.DATASETS[n]}" for n in learned.QUICK_DATASETS))
    width = st.select_slider("Channels (width)", learned.WIDTHS, value=32, key="lc_width")
    depth = st.slider("Blocks (depth)", 2, 12, 6, key="lc_depth")
    k = st.slider("Kernel size k", 3, 15, 9, step=2, key="lc_k")
    patch = st.number_input("Patch size", 1, 8, 2, step=1, key="lc_patch")
    epochs = st.number_input("Epochs", 1, 20, 2, step=1, key="lc_epochs")
    st.caption("ConvMixer with PyTorch's default init, AdamW one-cycle. The default takes a minute "
               "or two on a 2-core CPU; its deeper layers learn wider covariances already.")
    return train.TrainConfig(dataset=dataset, model=models.convmixer_spec(width, depth), kernel_size=k,
                             patch_size=int(patch), epochs=int(epochs), init="default")


def source_sidebar():
    """Sidebar: where the covariances come from. Returns ("run", id), ("quick", config), ("timm", name,
    weights), ("attention", id), ("file", upload), ("upload", file, arch) or None."""
    runs = {labels.run_label(r): r.id for r in runs_with_learned_covariances()}
    st.header("Source")
    st.session_state.setdefault("lc_source", learned.RUN if runs else learned.QUICK)
    source = st.radio("Learned covariances from", learned.SOURCES, key="lc_source")
    if source == learned.RUN:
        if not runs:
            st.caption("No saved run with trained filters yet: train a quick run or use the Training Lab.")
            return None
        wanted = st.session_state.pop("lc_select_run", None)
        if wanted in runs.values():
            st.session_state.lc_run = next(label for label, i in runs.items() if i == wanted)
        return ("run", runs[st.selectbox("Run", list(runs), key="lc_run")])
    if source == learned.QUICK:
        config = quick_run_settings()
        st.button("Train", type="primary", key="lc_train", disabled=background.running(SLOT) is not None,
                  on_click=background.start, args=(SLOT, "train", config),
                  kwargs=dict(batch_size=config.batch_size, label=f"Learned Covariances: {config.model} "
                                                                   f"on {config.dataset}"))
        return ("quick", config)
    if source == learned.TIMM:
        return pretrained_source.pick()
    if source == learned.ATTENTION:
        run_id = attention_section.pick_run()
        return None if run_id is None else ("attention", run_id)
    if source == learned.FILE:
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
    learned_set = learned_sets.learned_from_matrix_file(data, name, max_bytes=max_bytes)
    if (too_small := too_small_kernel(name, learned_set.kernel_size)) is not None:
        raise ValueError(f"This file cannot be used: {too_small}.")
    return learned_set


def show_upload(chosen: tuple) -> None:
    """The analysis of an uploaded covariance file or checkpoint (read once per file)."""
    if chosen[0] == "file":
        upload, arch = chosen[1], None
        learned_set = read_upload_once("lc_file_memo", upload, covariances_from_upload, what="the covariances")
        if bad := non_psd_layers(upload.file_id, learned_set):
            st.warning(f"Layer(s) {', '.join(map(str, bad))} of {upload.name} are not positive "
                       "semi-definite: the transfer and the learned init use their nearest PSD matrix.")
    else:
        _, upload, arch = chosen
        learned_set = read_upload_once("lc_upload_memo", upload, learned_sets.learned_from_checkpoint, arch)
    analysis(learned_set, f"{upload.file_id}:{arch}", learned.name_hint(upload.name.rsplit(".", 1)[0], 30) or "upload")


def show(chosen: tuple) -> None:
    """What the chosen source holds: the attention view of a ViT run, or the analysis of its covariances."""
    if chosen[0] == "attention":
        attention_section.show(chosen[1])
    elif chosen[0] == "timm":
        _, name, weights = chosen
        analysis(pretrained_source.learned_set(name, weights), f"timm:{name}:{weights}",
                 learned.name_hint(name.split(".")[0]))
    elif chosen[0] == "run":
        store_path = str(run_store().path)
        analysis(run_set(store_path, chosen[1]), f"{store_path}#{chosen[1]}", f"run{chosen[1]}",
                 run_reach_warning(store_path, chosen[1]))
    else:
        show_upload(chosen)


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
        if message := learned.nothing_to_show(st.session_state.get("lc_source"), attention_section.MEASURE_COMMAND):
            st.info(message)
        st.stop()
    show(chosen)
