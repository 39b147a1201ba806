"""Home: what convcov is, a covariance and filters sampled from it, every page with its summary."""

import streamlit as st
import torch

from convcov_app.navigation import discover_pages
from convcov_app.support import CHART, shown_errors, status_box
from convcov_core import covariance, init, plots

st.set_page_config(page_title="convcov", layout="wide")


@st.cache_data(show_spinner=False)
def landing_figures(k: int = 9, sigma: float = 2.0, n: int = 16):
    """The tiled closed-form covariance and n filters sampled from it (fixed seed)."""
    cov = covariance.gaussian(k, sigma, structured=True)
    filters = init.sample_scheme("gaussian", k, n, sigma=sigma,
                                 generator=torch.Generator().manual_seed(0))
    return (
        plots.covariance_figure(cov, title=f"Closed-form covariance, k = {k}, σ = {sigma:g} (tiled)",
                                height=400),
        plots.filter_grid_figure(filters, columns=4, title=f"{n} filters sampled from it", height=400),
    )


st.title("convcov")
st.markdown(
    "Trained depthwise convolutional filters are not random: their covariance has a simple "
    "structure, close to a Gaussian in the distance between pixels, which widens with depth "
    "(Trockman, Willmott & Kolter, ICLR 2023). "
    "convcov computes these covariances in closed form or extracts them from trained networks, "
    "samples filters from them and initializes real models (ConvMixer, timm models) with them. "
    "Its pages let you explore the structure, compare init schemes and test the claims by training. "
    "A trained ConvMixer ships with it (run *example* in the run store), so the pages that read "
    "trained filters have one to show before you train anything."
)
with shown_errors():
    cov_fig, filter_fig = landing_figures()
    left, right = st.columns([1.15, 1], gap="medium")
    left.plotly_chart(cov_fig, **CHART)
    right.plotly_chart(filter_fig, **CHART)
    st.caption("Left: tile (i, j) shows how pixel (i, j) co-varies with every other pixel, a "
               "Gaussian bump centred on itself. Right: filters drawn from that covariance are "
               "smooth blobs, unlike the i.i.d. noise of PyTorch's default init.")

pages_col, status_col = st.columns([1.15, 1], gap="medium")
with pages_col:
    st.header("Pages")
    for entry in discover_pages():
        st.page_link(str(entry.path), label=entry.title)
        if entry.summary:
            st.caption(entry.summary)
with status_col:
    with shown_errors():
        status_box()
