"""Filters in frequency: mean |FFT| spectra, radial profiles and effective sizes, sampled or trained."""

import streamlit as st

from convcov_app import frequency_view, labels
from convcov_app.navigation import page_setup
from convcov_app.store import run_reach_warning, run_store, runs_with_learned_covariances
from convcov_app.support import CHART, shown_errors, stored_runs_or_warning
from convcov_app.uploads import checkpoint_uploader, read_upload_once
from convcov_core import frequency
from convcov_core.plots import analysis as figures

page_setup("Frequency View")


@st.cache_data(max_entries=8, show_spinner=False, ttl=60)
def stored_runs() -> list:
    """Saved runs whose filters were trained (a frozen run's filters are its init's)."""
    return runs_with_learned_covariances()


@st.cache_resource(max_entries=8, show_spinner="Sampling filters and computing spectra…")
def view(source, k, n, sigma, network, seed, *, _checkpoint=None) -> frequency.FrequencyView:
    """Filters, spectra and fits of one source (shared and only read: the energy slider derives
    its effective sizes with at_energy, without sampling again). network: None, ("run", id) or
    ("upload", file id, architecture) with the file's CheckpointFilters as _checkpoint."""
    run = _checkpoint
    if network is not None and network[0] == "run":
        run = run_store().get(network[1])
    return frequency.frequency_view(source, kernel_size=k, n=n, sigma=sigma, run=run, seed=seed)


@st.cache_data(max_entries=16, show_spinner="Sampling the closed form at every σ…")
def sigma_curve(k, seed, scheme) -> frequency.SigmaCurve:
    return frequency.sigma_curve(k, seed=seed, scheme=scheme)


def network_widgets(runs: list, source: str) -> tuple:
    """Where a network's filters come from: (("run", id) or None, the checkpoint upload or None)."""
    offered = frequency_view.offered_runs(runs, source)
    kinds = frequency_view.NETWORKS if offered else frequency_view.NETWORKS[1:]
    if st.radio("Network", kinds, key="fv_network") == frequency_view.SAVED_RUN:
        by_label = {labels.run_label(summary): summary.id for summary in offered}
        return ("run", by_label[st.selectbox("Saved run", list(by_label), key="fv_run")]), None
    return None, checkpoint_uploader("fv")


def sidebar(runs: list) -> tuple:
    """(source, kernel size, filters sampled, σ, seed, energy share, network, checkpoint upload)."""
    st.header("Filters")
    source = frequency_view.SOURCES[st.radio("Filters from", list(frequency_view.SOURCES), key="fv_source")]
    network, uploaded = network_widgets(runs, source) if frequency_view.from_network(source) else (None, None)
    k = 9  # a network's filters keep their own kernel size
    if not frequency_view.from_network(source):
        k = st.slider("Kernel size k", 3, 31, 9, step=2, key="fv_kernel_size")
    sigma = st.select_slider("σ of the closed form (pixels)", labels.SIGMA_OPTIONS, value=2.0,
                             key="fv_sigma", disabled=not frequency.uses_sigma(source))
    n = st.select_slider("Filters sampled per layer", frequency_view.FILTER_COUNTS, value=1024, key="fv_n",
                         disabled=source == frequency.TRAINED)
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, step=1, key="fv_seed")
    energy = st.slider("Energy share for the effective size", 0.5, 0.99, 0.9, step=0.01, key="fv_energy")
    if not runs:
        st.caption("Saved runs appear here as sources once a training run with saved "
                   "covariances is in the run store.")
    elif frequency_view.from_network(source) and not frequency_view.offered_runs(runs, source):
        st.caption("A saved run's trained filters need its weights: save them with "
                   "`convcov compare --save --keep-weights`.")
    return source, k, n, sigma, int(seed), energy, network, uploaded


def figures_of(result: frequency.FrequencyView, source: str, sigma: float, seed: int) -> None:
    """Spectra, radial profiles, effective sizes and σ against smoothness: two a row for one layer."""
    summary = result.summary
    one_layer = len(summary.names) == 1
    top = st.columns(2, gap="medium") if one_layer else [st.container()]
    with top[0]:
        st.plotly_chart(figures.spectra_figure(summary.spectra, summary.names,
                                               panel_height=300 if one_layer else 230), **CHART)
        st.caption(frequency_view.SPECTRA_CAPTION)
    middle = st.columns(2, gap="medium")
    with (top[1] if one_layer else middle[0]):
        st.plotly_chart(figures.radial_profile_figure(summary.radii, summary.profiles, summary.names,
                                                      size=summary.size, white_noise=result.white_noise), **CHART)
        st.caption(frequency_view.profile_caption(result.white_noise is not None))
    with middle[0 if one_layer else 1]:
        st.plotly_chart(figures.effective_size_figure(summary.effective_sizes, summary.names,
                                                      kernel_size=summary.kernel_size,
                                                      energy=summary.energy), **CHART)
        st.caption(frequency_view.size_caption(summary.kernel_size))
    with (middle[1] if one_layer else st.container()):
        curve = sigma_curve(summary.kernel_size, seed, frequency.curve_scheme(source))
        st.plotly_chart(figures.sigma_curve_figure(curve,
                                                   current_sigma=sigma if frequency.uses_sigma(source) else None,
                                                   fitted=result.fitted), **CHART)
        st.caption(frequency_view.sigma_curve_caption(bool(result.fitted)))


st.title("Frequency View")
st.markdown(
    "Where the energy of convolutional filters sits: the mean |FFT| of the filters zero-padded to "
    "64 × 64, its radial profile, and each filter's *effective size*: the side of the smallest "
    "centred square that holds a chosen share of the filter's energy (sum of squared weights)."
)
with shown_errors():
    runs_found = stored_runs_or_warning(stored_runs)
    with st.sidebar:
        source, k, n, sigma, seed, energy, network, uploaded = sidebar(runs_found)
    checkpoint = None
    if frequency_view.from_network(source) and network is None:
        if uploaded is None:
            st.info("Upload a checkpoint in the sidebar: a .safetensors file or a torch.save file of "
                    "a ConvMixer's or a timm ConvNeXt's state dict.")
            st.stop()
        upload, architecture = uploaded
        checkpoint = read_upload_once("fv_upload_memo", upload, frequency.filters_from_checkpoint, architecture)
        network = ("upload", upload.file_id, architecture)
    result = view(source, k, n, sigma if frequency.uses_sigma(source) else None, network, seed,
                  _checkpoint=checkpoint).at_energy(energy)
    if network is not None and network[0] == "run" and (
            warning := run_reach_warning(str(run_store().path), network[1])):
        st.warning(warning)
    figures_of(result, source, sigma, seed)
