"""Move sigma and the kernel size and watch the closed-form Gaussian covariance, its blocks and spectrum."""

import threading
from functools import partial

import streamlit as st

from convcov_app import explorer, labels
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
    """Chart click -> the pixel sliders."""
    points = st.session_state["explorer_chart"].selection.points
    if points:
        pixel = explorer.clicked_pixel(points[0]["x"], points[0]["y"], k, view)
        st.session_state.explorer_pixel_row, st.session_state.explorer_pixel_col = pixel


@st.fragment
def matrix_and_block(k: int, sigma: float, view: str, per_block: bool) -> None:
    """The matrix with the selected pixel's block outlined, that block with its pixel sliders, and the
    eigenvalues below it: a pixel move reruns only this part of the page."""
    with shown_errors():
        left, right = st.columns([3, 2], gap="medium")
        with right:  # the sliders first: the matrix below needs them, and is drawn before the block
            if st.session_state.get("explorer_pixel_k") != k:  # new kernel size: start from the centre pixel
                st.session_state.explorer_pixel_k = k
                st.session_state.explorer_pixel_row = st.session_state.explorer_pixel_col = k // 2
            row_col, column_col = st.columns(2)
            i = row_col.slider("Row i", 0, k - 1, key="explorer_pixel_row", help="Row of the selected pixel.")
            j = column_col.slider("Column j", 0, k - 1, key="explorer_pixel_col",
                                  help="Column of the selected pixel.")
        with left:
            fig, lock = main_figure(k, sigma, view, per_block)
            with lock:
                plots.outline_block(fig, k, view, i, j)
                st.plotly_chart(fig, key="explorer_chart", on_select=partial(pick_pixel_from_click, k, view),
                                selection_mode="points", **CHART)
            st.caption(explorer.matrix_caption(k, view))
        with right:
            st.plotly_chart(plots.block_figure(closed_form(k, sigma), i, j, height=330), **CHART)
            rank, eigen_fig = eigen_figure(k, sigma)
            st.plotly_chart(eigen_fig, **CHART)
            st.caption(explorer.rank_caption(rank, k))


def sidebar() -> tuple[int, float, str, bool]:
    """Kernel size, σ, view and colour scale: (k, sigma, view, per_block)."""
    st.header("Covariance")
    k = st.slider("Kernel size k", 3, settings.max_kernel_size(), 9, step=2, key="explorer_kernel_size",
                  help="Odd sizes only, so the filter has a centre pixel.")
    sigma = st.select_slider("σ (pixels, log scale)", labels.SIGMA_OPTIONS, value=2.0, key="explorer_sigma",
                             help="Width of the Gaussian: how far apart two pixels can be and still co-vary.")
    view = st.radio("View", explorer.VIEWS, horizontal=True, key="explorer_view",
                    help="tiled: a k × k grid of tiles, tile (i, j) is pixel (i, j)'s block. "
                         "flat: row k·i + j of the k² × k² matrix is pixel (i, j).")
    scale = st.radio("Colour scale", explorer.SCALES, horizontal=True, key="explorer_scale",
                     help="per block: each block is scaled to its own maximum.")
    return k, sigma, view, scale == "per block"


def factor_and_downloads(k: int, sigma: float, view: str, per_block: bool) -> None:
    factor_col, download_col = st.columns([2, 3], gap="medium")
    factor_col.plotly_chart(factor_figure(k, sigma), **CHART)
    with download_col:
        st.subheader("Downloads")
        st.markdown(f"The flat {k * k} × {k * k} covariance S[k·i + j, k·l + m] (float64, unit diagonal).")
        name = explorer.download_name(k, sigma)
        npy_col, pt_col, html_col = st.columns(3)
        npy_col.download_button("Covariance .npy", partial(covariance_file, k, sigma, "npy"),
                                file_name=f"{name}.npy", mime="application/octet-stream", key="explorer_npy")
        pt_col.download_button("Covariance .pt", partial(covariance_file, k, sigma, "pt"),
                               file_name=f"{name}.pt", mime="application/octet-stream", key="explorer_pt")
        html_col.download_button("Figure .html", partial(figure_html, k, sigma, view, per_block),
                                 file_name=f"{name}_{view}.html", mime="text/html", key="explorer_html")
        st.caption("For a PNG of any figure use the camera button in the figure's toolbar (top right "
                   "when you hover it). Load the .pt file with torch.load(path, weights_only=True).")


def depth_schedule(k: int) -> None:
    st.header("Depth schedule")
    st.markdown("In trained ConvMixers the covariance spreads out with depth. Layer l of L uses "
                "σ_l = σ_first + (σ_last − σ_first) · (l − 1) / (L − 1), l = 1 … L.")
    first_col, last_col, depth_col = st.columns(3)
    sigma_first = first_col.select_slider("σ_first (layer 1)", labels.SIGMA_OPTIONS, value=1.0,
                                          key="explorer_sigma_first")
    sigma_last = last_col.select_slider("σ_last (last layer)", labels.SIGMA_OPTIONS, value=3.0,
                                        key="explorer_sigma_last")
    depth = depth_col.slider("Depth L (layers)", 1, 12, 8, key="explorer_depth")
    st.plotly_chart(schedule_figure(k, sigma_first, sigma_last, depth), **CHART)
    st.caption(explorer.schedule_caption(k))


st.title("Covariance Explorer")
st.markdown(
    "The closed-form covariance of a k × k filter: pixel (i, j) and pixel (l, m) co-vary as "
    "exp(−((i−l)² + (j−m)²) / 2σ²). It is the Kronecker product A ⊗ A of a 1-D Gaussian factor A, "
    "so sampling and eigenvalues cost O(k³) instead of O(k⁶)."
)
with shown_errors():
    with st.sidebar:
        k, sigma, view, per_block = sidebar()
    matrix_and_block(k, sigma, view, per_block)
    factor_and_downloads(k, sigma, view, per_block)
    depth_schedule(k)
