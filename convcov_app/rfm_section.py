"""The Feature Ansatz page's ConvRFM section (seed 001, convcov_core.rfm): the four models against noise
as measured, and a ConvRFM fitted on the page's data beside the page's CNN: its M against the CNN's
first-layer WᵀW and patch-AGOP and the closed form, its eigenvectors as filters, its feature map."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from convcov_app.support import CHART, load_note
from convcov_core import cnfa, model_pairs, models
from convcov_core.analysis import CNFALayer
from convcov_core.plots import analysis as figures
from convcov_core.plots.rfm import accuracy_figure
from convcov_core.rfm import against_cnn, measured_sweep

IMAGE_COUNTS = (50, 100, 200, 400, 800)
MEASURE_COMMAND = "python -m convcov_core rfm --json reports/rfm/noisy-bars.json"


@st.cache_resource(max_entries=4, show_spinner="Fitting ConvRFM (kernel ridge regression, then patch-AGOPs)…")
def fitted(config, n_images: int, patch_size: int):
    """against_cnn.fit_on, once per setting on this server (a read-only result)."""
    return against_cnn.fit_on(config, n_images, patch_size)


def measured() -> None:
    """The measured sweep: accuracy against noise for the four models, or where to get it."""
    sweep = measured_sweep()
    if sweep is None:
        st.info(f"No measured sweep on this server: `{MEASURE_COMMAND}` writes it.")
        return
    setup = sweep["setup"]
    st.plotly_chart(accuracy_figure(sweep["summary"], title=f"{setup['dataset']}: test accuracy against noise"),
                    **CHART)
    st.caption(f"Measured with `{MEASURE_COMMAND}`: {setup['n_train']} training and {setup['n_test']} test "
               f"images per seed, seeds {', '.join(map(str, sweep['seeds']))}; mean and 95% interval. The base "
               "kernel is the Laplace patch kernel without feature learning; ConvRFM learns its patch metric M "
               "from the AGOP of its own predictor; Deep ConvRFM draws each layer's filters from N(0, M); the CNN "
               "is this page's small CNN. docs/results.md reads the verdicts.")


def comparable_layer(pair: model_pairs.ModelPair, comparison: cnfa.CNFAComparison) -> CNFALayer | None:
    """The CNN's first conv layer when a ConvRFM can stand beside it: a plain CNN trained on an embedded
    dataset, its first layer reading square k x k patches of the image."""
    row = comparison.trained[0]
    if pair.config.dataset not in model_pairs.CNN_DATASETS or models.parse_spec(pair.config.model)["kind"] != "cnn":
        return None
    return row if row.kind == "regular" and isinstance(row.kernel_size, int) else None


def beside_cnn(pair: model_pairs.ModelPair, row: CNFALayer, image_index: int) -> None:
    """Fit button, then ConvRFM's accuracy, correlations, eigenfilters and feature map."""
    q = row.kernel_size
    left, right = st.columns([2, 3], vertical_alignment="bottom")
    n_images = left.select_slider("Training images for ConvRFM", IMAGE_COUNTS, value=200, key="fa_rfm_images")
    setting = (pair.config, n_images, q)
    if right.button("Fit ConvRFM", key="fa_rfm_fit"):
        st.session_state.fa_rfm_setting = setting
    if st.session_state.get("fa_rfm_setting") != setting:
        st.caption(f"ConvRFM on {n_images} random training images of {model_pairs.describe_dataset(pair.config)} "
                   f"with {q} × {q} patches (the CNN's first layer), three AGOP iterations; its time grows "
                   "with the n × n kernel matrix of the n images." + load_note())
        return
    machine, accuracy = fitted(*setting)
    history = ", ".join(f"{h['val_acc']:.0f}%" for h in machine.history)
    st.markdown(f"**ConvRFM:** test accuracy {accuracy:.1f}% (validation by iteration: {history}; "
                f"M from iteration {machine.chosen}).")
    st.dataframe(pd.DataFrame(against_cnn.correlations(machine, row)).style.format({"r": "{:.3f}"}), hide_index=True)
    st.caption("Pearson r over all entries of the two matrices: does kernel regression's patch-AGOP pick "
               "the same patch directions as the trained CNN's first layer, and is it a Gaussian bump?")
    shares, vectors = against_cnn.eigenfilters(machine, 8)
    st.plotly_chart(figures.eigenfilter_figure(vectors, shares), **CHART)
    image = cnfa.analysis_images(pair.config, image_index + 1)[image_index]
    cnn_map = cnfa.layer_feature_maps(pair.trained, {row.name: row.agop}, image)[row.name]
    maps = [[cnn_map.numpy(), against_cnn.feature_map(machine, image).numpy()]]
    st.plotly_chart(figures.feature_map_figure([cnfa.to_pixels(image, pair.info)], maps,
                                               [f"test image #{image_index}"],
                                               [f"CNN patch-AGOP ({row.name})", "ConvRFM's M"]), **CHART)
    st.caption("Top: ConvRFM's eigenvectors of M as filters (share of the trace). Bottom: ‖M½ patch‖ of the "
               "test image chosen above under the CNN's first-layer AGOP and under ConvRFM's M.")


def show(pair: model_pairs.ModelPair, comparison: cnfa.CNFAComparison, image_index: int) -> None:
    """The section, behind a toggle (fitting takes seconds to minutes)."""
    st.subheader("ConvRFM: the same features without backpropagation")
    if not st.toggle("Show ConvRFM (seed 001's kernel machines)", key="fa_rfm_show",
                     help="Kernel ridge regression whose patch metric M is the AGOP of its own "
                          "predictor (Algorithm 1), and its layer-wise deep version (Algorithm 2)."):
        return
    measured()
    row = comparable_layer(pair, comparison)
    if row is None:
        st.info("A ConvRFM is fitted beside a small CNN trained on an embedded dataset (its first layer's "
                "patches): pick *A small CNN trained here*, or a saved one.")
        return
    beside_cnn(pair, row, image_index)
