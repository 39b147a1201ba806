"""Filters in frequency: mean |FFT| spectra, radial profiles and effective sizes, sampled or trained."""

import streamlit as st

from convcov_app import labels
from convcov_app.navigation import page_setup
from convcov_app.store import run_reach_warning, run_store, runs_with_learned_covariances
from convcov_app.support import CHART, shown_errors, stored_runs_or_warning
from convcov_app.uploads import checkpoint_uploader, read_upload_once
from convcov_core import frequency
from convcov_core.plots import analysis as figures

page_setup("Frequency View")

SOURCES = {
    "Closed-form Gaussian (σ)": "gaussian",
    "PyTorch default (uniform)": "default",
    "Learned covariance of a network": "learned",
    "Trained filters of a network": "trained",
}
NETWORKS = ("A saved run", "An uploaded checkpoint")
FILTER_COUNTS = (64, 256, 1024, 4096)


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
def sigma_curve(k, seed) -> frequency.SigmaCurve:
    return frequency.sigma_curve(k, seed=seed)


st.title("Frequency View")
st.markdown(
    "Where the energy of convolutional filters sits: the mean |FFT| of the filters zero-padded to "
    "64 × 64, its radial profile, and each filter's *effective size*: the side of the smallest "
    "centred square that holds a chosen share of the filter's energy (sum of squared weights)."
)

with shown_errors():
    runs_found = stored_runs_or_warning(stored_runs)
    with st.sidebar:
        st.header("Filters")
        source = SOURCES[st.radio("Filters from", list(SOURCES), key="source")]
        from_network = source in ("learned", "trained")
        network, uploaded = None, None
        if from_network:  # a run's trained filters need its weights, its covariance does not
            offered = [s for s in runs_found if s.has_weights or source == "learned"]
            kinds = NETWORKS if offered else NETWORKS[1:]
            if st.radio("Network", kinds, key="network") == NETWORKS[0]:
                by_label = {labels.run_label(summary): summary.id for summary in offered}
                network = ("run", by_label[st.selectbox("Saved run", list(by_label), key="run")])
            else:
                uploaded = checkpoint_uploader("fv")
        k = 9
        if not from_network:  # a network's filters keep their own kernel size
            k = st.slider("Kernel size k", 3, 31, 9, step=2, key="kernel_size")
        sigma = st.select_slider("σ of the closed form (pixels)", labels.SIGMA_OPTIONS, value=2.0,
                                 key="sigma", disabled=source != "gaussian")
        n = st.select_slider("Filters sampled per layer", FILTER_COUNTS, value=1024, key="n",
                             disabled=source == "trained")
        seed = st.number_input("Seed", 0, 2**31 - 1, 0, step=1, key="seed")
        energy = st.slider("Energy share for the effective size", 0.5, 0.99, 0.9, step=0.01,
                           key="energy")
        if not runs_found:
            st.caption("Saved runs appear here as sources once a training run with saved "
                       "covariances is in the run store.")
        elif from_network and not offered:
            st.caption("A saved run's trained filters need its weights: save them with "
                       "`convcov compare --save --keep-weights`.")

    checkpoint = None
    if from_network and network is None:
        if uploaded is None:
            st.info("Upload a checkpoint in the sidebar: a .safetensors file or a torch.save file of "
                    "a ConvMixer's or a timm ConvNeXt's state dict.")
            st.stop()
        upload, architecture = uploaded
        checkpoint = read_upload_once("fv_upload_memo", upload, frequency.filters_from_checkpoint, architecture)
        network = ("upload", upload.file_id, architecture)
    result = view(source, k, n, sigma if source == "gaussian" else None, network, int(seed),
                  _checkpoint=checkpoint).at_energy(energy)
    summary = result.summary
    if network is not None and network[0] == "run" and (
            warning := run_reach_warning(str(run_store().path), network[1])):
        st.warning(warning)

    one_layer = len(summary.names) == 1
    top = st.columns(2, gap="medium") if one_layer else [st.container()]
    with top[0]:
        st.plotly_chart(figures.spectra_figure(summary.spectra, summary.names,
                                               panel_height=300 if one_layer else 230), **CHART)
        st.caption("Mean |FFT|, low frequencies in the centre: white-noise filters (PyTorch default) "
                   "spread their energy over all frequencies, smooth filters (a larger σ, or trained "
                   "ones) keep it in a central blob that shrinks as they get smoother.")
    middle = st.columns(2, gap="medium")
    with (top[1] if one_layer else middle[0]):
        st.plotly_chart(figures.radial_profile_figure(summary.radii, summary.profiles, summary.names,
                                                      size=summary.size,
                                                      white_noise=result.white_noise), **CHART)
        reference = (" (dashed: PyTorch's default i.i.d. filters of the same size)"
                     if result.white_noise is not None else "")
        st.caption(f"How fast the spectrum falls with frequency: a flat line is white noise{reference}, "
                   "a steep drop means low-pass (smooth) filters. The legend gives the frequency at "
                   "which each line falls to half its peak: the lower, the smoother the filters.")
    with middle[0 if one_layer else 1]:
        st.plotly_chart(figures.effective_size_figure(summary.effective_sizes, summary.names,
                                                      kernel_size=summary.kernel_size,
                                                      energy=summary.energy), **CHART)
        st.caption(f"Bars at {summary.kernel_size} mean the energy fills the whole filter; bars far "
                   "below it mean localized filters. The frequency-view paper found trained filters "
                   "far smaller than their kernel; a short run from a random init keeps much of the "
                   "init's spread. The closed form gives every pixel the same variance, so its "
                   "filters fill the window whatever σ: σ sets smoothness, not size.")
    with (middle[1] if one_layer else st.container()):
        st.plotly_chart(figures.sigma_curve_figure(
            sigma_curve(summary.kernel_size, int(seed)),
            current_sigma=sigma if source == "gaussian" else None,
            fitted=result.fitted), **CHART)
        st.caption("Where the closed form's mean |FFT| falls to half its peak: the larger σ, the "
                   "smoother its filters and the lower the curve (at σ of about 0.5 px and below it "
                   "stays above half up to 0.5 cycles/pixel, like white noise). "
                   + ("Diamonds: the network's layers at the σ that best fits their learned covariance; "
                      "below the curve means smoother than the closed form at that σ, above means "
                      "rougher." if result.fitted else "Pick a network as the source to place its "
                                                       "layers here."))
