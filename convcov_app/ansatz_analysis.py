"""Everything the Feature Ansatz page shows for a model and the same model at init: r(AGOP, CNFM) per
layer, one layer's two matrices, their top eigenvectors as filters, ‖M½ patch‖ feature maps, and the
ConvRFM section."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from convcov_core import cnfa, model_pairs
from convcov_core.plots import analysis as figures

from . import ansatz, rfm_section
from .support import CHART, reset_when_changed


@st.cache_resource
def saved_run_memo() -> dict:
    """CNFA comparisons of saved runs (their weights never change), shared by every visitor."""
    return {}


def cnfa_comparison(key, pair: model_pairs.ModelPair, n_images: int, outputs) -> cnfa.CNFAComparison:
    """The trained-vs-init CNFA comparison, computed once per model and settings: in this session
    for a model trained here, on this server for a saved run."""
    memo = saved_run_memo() if key[0] == "run" else st.session_state.setdefault("fa_cnfa_memo", {})
    memo_key = (key, n_images, outputs)
    comparison = memo.get(memo_key)
    if comparison is None:
        text = f"Patch-AGOPs of the trained model and at init on {n_images} test images…"
        bar = st.progress(0.0, text=text)
        inputs = cnfa.analysis_images(pair.config, n_images)
        comparison = memo[memo_key] = cnfa.compare_cnfa(pair, inputs, outputs=outputs,
                                                      progress=lambda done: bar.progress(done, text=text))
        bar.empty()
        for old in list(memo)[:-ansatz.MEMO_SIZE]:
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
              cnfa.natural_images([picture], ansatz.NATURAL_SIZE, _pair.info)[0]]
    maps = [[m.numpy() for m in cnfa.layer_feature_maps(model, matrices, image).values()] for image in images]
    return figures.feature_map_figure([cnfa.to_pixels(image, _pair.info) for image in images], maps,
                                      [f"test image #{index}", picture], list(layers))


def one_layer(key, comparison: cnfa.CNFAComparison, names: list[str]):
    """A layer's AGOP and CNFM, trained or at init; (the layer, which model, "agop" or "cnfm" for the views below)."""
    st.subheader("AGOP and CNFM of one layer")
    c1, c2, c3 = st.columns(3)
    reset_when_changed("fa_network_shown", key, dict(fa_layer=comparison.first_spatial_layer()))
    layer = c1.selectbox("Layer", names, key="fa_layer")
    which = c2.radio("Model", ("trained", "at initialization"), horizontal=True, key="fa_which")
    operator = c3.radio("Operator M for the views below", ("patch-AGOP", "CNFM"), horizontal=True, key="fa_operator")
    row = comparison.row(layer, "trained" if which == "trained" else "initial")
    st.plotly_chart(figures.matrix_pair_figure(row.agop, row.cnfm, kernel_size=row.kernel_size,
                                               channels=row.channels, r=row.r), **CHART)
    st.caption(ansatz.matrices_caption(row.channels))
    return row, which, "agop" if operator == "patch-AGOP" else "cnfm"


def feature_maps(pair: model_pairs.ModelPair, comparison: cnfa.CNFAComparison, settings: tuple, which: str,
                 matrix: str, names: list[str]) -> int:
    """‖M½ patch‖ of a test image and a natural picture under each shown layer's M; the test image's index."""
    st.subheader("Feature maps ‖M½ patch‖")
    f1, f2, f3 = st.columns(3)
    reset_when_changed("fa_images_shown", (settings[0], comparison.n_images), dict(fa_image=0))
    index = f1.number_input("Test image #", 0, comparison.n_images - 1, step=1, key="fa_image")
    picture = f2.selectbox("Natural image (scikit-image)", cnfa.NATURAL_IMAGES,
                           index=cnfa.NATURAL_IMAGES.index("camera"), key="fa_picture")
    n_layers = 1
    if len(names) > 1:
        reset_when_changed("fa_maps_shown", settings[0], dict(fa_map_layers=min(3, len(names))))
        n_layers = f3.slider("Layers shown", 1, min(4, len(names)), step=1, key="fa_map_layers")
    maps = feature_maps_figure(settings, which, matrix, tuple(names[:n_layers]), int(index), picture,
                               _pair=pair, _comparison=comparison)
    st.plotly_chart(maps, **CHART)
    st.caption(ansatz.MAPS_CAPTION)
    return int(index)


def show(pair: model_pairs.ModelPair, key, n_images: int, outputs: str, small_cnn: bool) -> None:
    """The whole analysis of `pair` (`key` names it for the memos); `small_cnn`: the page's own CNN."""
    st.markdown(ansatz.model_line(pair))
    gradients_of = ansatz.gradients_of(outputs)
    comparison = cnfa_comparison(key, pair, n_images, gradients_of)
    table = comparison.table()
    st.subheader("r(AGOP, CNFM) per layer: trained vs at initialization")
    st.dataframe(pd.DataFrame(table).style.format(precision=3), hide_index=True)
    st.plotly_chart(figures.cnfa_bar_figure(table), **CHART)
    st.caption(ansatz.table_caption(comparison.n_images))
    names = [row["layer"] for row in table]
    row, which, matrix = one_layer(key, comparison, names)
    st.subheader("Top eigenvectors of M as filters")
    n_vectors = st.slider("Eigenvectors", 1, 16, 8, key="fa_n_vectors")
    shares, vectors = cnfa.eigenfilters(row, matrix, n_vectors)
    st.plotly_chart(figures.eigenfilter_figure(vectors, shares), **CHART)
    st.caption(ansatz.eigenfilters_caption(row.channels, small_cnn))
    index = feature_maps(pair, comparison, (key, n_images, gradients_of), which, matrix, names)
    rfm_section.show(pair, comparison, index)
