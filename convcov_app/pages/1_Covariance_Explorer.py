"""Move sigma and the kernel size and watch the closed-form Gaussian covariance, its blocks and spectrum."""

import threading
from functools import partial

import streamlit as st

from convcov_app import labels
from convcov_app.navigation import page_setup
from convcov_app.support import CHART, shown_errors
from convcov_core import covariance, matrix_files, plots, settings

page_setup("Covariance Explorer")


@st.cache_data(max_entries=32, show_spinner=False)
def closed_form(k: int, sigma: float) -> covariance.KroneckerCovariance:
    return covariance.gaussian(k, sigma, structured=True)


# Figures are cached as shared objects (st.cache_resource): copying a plotly figure out of
# st.cache_data re-validates it, which cost more than the rest of a rerun. The main figure is only
# re-framed for the selected pixel under its lock, right before it is serialized.
@st.cache_resource(max_entries=16, show_spinner="Drawing the covariance…")
def main_figure(k: int, sigma: float, view: str, per_block: bool):
    fig = plots.covariance_figure(closed_form(k, sigma), view=view, per_block=per_block,
                                  pickable=True, height=560,
                                  title=f"Covariance S, {view} view (k = {k}, σ = {sigma:g})")
    return fig, threading.Lock()


@st.cache_resource(max_entries=16, show_spinner=False)
def eigen_figure(k: int, sigma: float):
    """(effective rank, the eigenvalue figure)."""
    cov = closed_form(k, sigma)
    rank = covariance.effective_rank(cov)
    return rank, plots.eigenvalue_figure(cov.eigenvalues(), rank, height=300)


@st.cache_resource(max_entries=16, show_spinner=False)
def factor_figure(k: int, sigma: float):
    return plots.factor_figure(closed_form(k, sigma).factor, sigma=sigma, height=300)


@st.cache_resource(max_entries=8, show_spinner="Drawing one panel per layer…")
def schedule_figure(k: int, sigma_first: float, sigma_last: float, depth: int):
    sigmas = covariance.depth_schedule(sigma_first, sigma_last, depth)
    return plots.depth_figure([closed_form(k, s) for s in sigmas], sigmas)


@st.cache_data(max_entries=4, show_spinner=False)
def covariance_file(k: int, sigma: float, fmt: str) -> bytes:
    return matrix_files.covariance_bytes(closed_form(k, sigma).dense(), fmt)


@st.cache_data(max_entries=4, show_spinner=False)
def figure_html(k: int, sigma: float, view: str, per_block: bool) -> str:
    return main_figure(k, sigma, view, per_block)[0].to_html(include_plotlyjs=True, full_html=True)


def pick_pixel_from_click(k: int, view: str) -> None:
    """Chart click -> the pixel sliders: tile (i, j) in the tiled view, row k*i + j in the flat one."""
    points = st.session_state["covariance_chart"].selection.points
    if not points:
        return
    x, y = round(points[0]["x"]), round(points[0]["y"])
    i, j = (y // k, x // k) if view == "tiled" else divmod(y, k)
    st.session_state.pixel_row, st.session_state.pixel_col = min(max(i, 0), k - 1), min(max(j, 0), k - 1)


@st.fragment
def matrix_and_block(k: int, sigma: float, view: str, per_block: bool) -> None:
    """The matrix with the selected pixel's block outlined, that block with its pixel sliders, and the
    eigenvalues below it: a pixel move reruns only this part of the page."""
    with shown_errors():
        left, right = st.columns([3, 2], gap="medium")
        with right:  # the sliders first: the matrix below needs them, and is drawn before the block
            if st.session_state.get("pixel_k") != k:  # new kernel size: start from the centre pixel
                st.session_state.pixel_k = k
                st.session_state.pixel_row = st.session_state.pixel_col = k // 2
            row_col, column_col = st.columns(2)
            i = row_col.slider("Row i", 0, k - 1, key="pixel_row", help="Row of the selected pixel.")
            j = column_col.slider("Column j", 0, k - 1, key="pixel_col", help="Column of the selected pixel.")
        with left:
            fig, lock = main_figure(k, sigma, view, per_block)
            with lock:
                plots.outline_block(fig, k, view, i, j)
                st.plotly_chart(fig, key="covariance_chart",
                                on_select=partial(pick_pixel_from_click, k, view),
                                selection_mode="points", **CHART)
            if k * k * k * k > plots.covariance.HEATMAP_MAX_CELLS:
                st.caption(f"At k = {k} the {k * k} × {k * k} matrix is sent as an image of block averages, "
                           "coloured on their own range (a tile's bump covers few of its cells, so the averages "
                           "peak lower than the matrix): hover shows row and column only; the block on the "
                           "right has exact values on hover.")
            else:
                st.caption("Hover a cell for its pixel pair and covariance."
                           + (" Click a tile to select its pixel." if view == "tiled" else ""))
        with right:
            st.plotly_chart(plots.block_figure(closed_form(k, sigma), i, j, height=330), **CHART)
            rank, eigen_fig = eigen_figure(k, sigma)
            st.plotly_chart(eigen_fig, **CHART)
            st.caption(
                "Effective rank = exp(−Σ pₙ log pₙ) with pₙ = λₙ / Σλ: the number of equally strong "
                f"directions that would give the same eigenvalue entropy ({rank:.1f} of {k * k} here). "
                "The eigenvalues are the products a_p·a_q of the eigenvalues of A."
            )


st.title("Covariance Explorer")
st.markdown(
    "The closed-form covariance of a k × k filter: pixel (i, j) and pixel (l, m) co-vary as "
    "exp(−((i−l)² + (j−m)²) / 2σ²). It is the Kronecker product A ⊗ A of a 1-D Gaussian factor A, "
    "so sampling and eigenvalues cost O(k³) instead of O(k⁶)."
)

with shown_errors():
    max_k = settings.max_kernel_size()
    with st.sidebar:
        st.header("Covariance")
        k = st.slider("Kernel size k", 3, max_k, 9, step=2, key="kernel_size",
                      help="Odd sizes only, so the filter has a centre pixel.")
        sigma = st.select_slider("σ (pixels, log scale)", labels.SIGMA_OPTIONS, value=2.0, key="sigma",
                                 help="Width of the Gaussian: how far apart two pixels can be and "
                                      "still co-vary.")
        view = st.radio("View", ["tiled", "flat"], horizontal=True, key="view",
                        help="tiled: a k × k grid of tiles, tile (i, j) is pixel (i, j)'s block. "
                             "flat: row k·i + j of the k² × k² matrix is pixel (i, j).")
        scale_mode = st.radio("Colour scale", ["shared", "per block"], horizontal=True, key="scale",
                              help="per block: each block is scaled to its own maximum.")

    per_block = scale_mode == "per block"
    matrix_and_block(k, sigma, view, per_block)

    factor_col, download_col = st.columns([2, 3], gap="medium")
    with factor_col:
        st.plotly_chart(factor_figure(k, sigma), **CHART)
    with download_col:
        st.subheader("Downloads")
        st.markdown(f"The flat {k * k} × {k * k} covariance S[k·i + j, k·l + m] (float64, unit diagonal).")
        name = f"gaussian_k{k}_sigma{sigma:g}"
        npy_col, pt_col, html_col = st.columns(3)
        npy_col.download_button("Covariance .npy", partial(covariance_file, k, sigma, "npy"),
                                file_name=f"{name}.npy", mime="application/octet-stream", key="dl_npy")
        pt_col.download_button("Covariance .pt", partial(covariance_file, k, sigma, "pt"),
                               file_name=f"{name}.pt", mime="application/octet-stream", key="dl_pt")
        html_col.download_button("Figure .html", partial(figure_html, k, sigma, view, per_block),
                                 file_name=f"{name}_{view}.html", mime="text/html", key="dl_html")
        st.caption("For a PNG of any figure use the camera button in the figure's toolbar (top right "
                   "when you hover it). Load the .pt file with torch.load(path, weights_only=True).")

    st.header("Depth schedule")
    st.markdown("In trained ConvMixers the covariance spreads out with depth. Layer l of L uses "
                "σ_l = σ_first + (σ_last − σ_first) · l / (L − 1).")
    first_col, last_col, depth_col = st.columns(3)
    sigma_first = first_col.select_slider("σ_first (layer 1)", labels.SIGMA_OPTIONS, value=1.0,
                                          key="sigma_first")
    sigma_last = last_col.select_slider("σ_last (last layer)", labels.SIGMA_OPTIONS, value=3.0,
                                        key="sigma_last")
    depth = depth_col.slider("Depth L (layers)", 1, 12, 8, key="depth")
    st.plotly_chart(schedule_figure(k, sigma_first, sigma_last, depth), **CHART)
    if k <= plots.covariance.TILE_LINES_MAX_K:
        st.caption(f"Tiled covariances at k = {k} (grey lines between tiles), one shared colour scale.")
    else:
        st.caption(f"At k = {k} a panel has fewer pixels than the {k * k} × {k * k} tiled view has cells, so "
                   f"each panel shows the centre pixel's block: how pixel ({k // 2}, {k // 2}) co-varies with "
                   "every pixel. One shared colour scale.")
