"""Sample filters from each init scheme side by side, with their covariance and mean spectrum."""

import numpy as np
import streamlit as st

from convcov_app import gallery, labels
from convcov_app.navigation import page_setup
from convcov_app.store import learned_covariances, runs_with_learned_covariances
from convcov_app.support import CHART, reset_when_changed, shown_errors, stored_runs_or_warning
from convcov_app.uploads import too_small_kernel
from convcov_core import init, learned_sets, matrix_files, plots, scheme_sample, settings

page_setup("Filter Gallery")


@st.cache_data(max_entries=8, show_spinner=False)
def learned_layers(run_id: int) -> list:
    return learned_covariances(run_id)


@st.cache_data(max_entries=8, show_spinner="Fitting σ to every layer…")
def most_structured_layer(run_id: int) -> int:
    return learned_sets.most_structured_layer(learned_sets.layer_fits(learned_layers(run_id)))


@st.cache_data(max_entries=4, show_spinner="Checking the matrix…")
def uploaded_report(data: bytes, name: str) -> matrix_files.CovarianceReport:
    return matrix_files.inspect_covariance(matrix_files.read_matrix(data, name))


@st.cache_data(max_entries=32, show_spinner="Sampling filters…")
def panel(scheme, k, n_show, n_sample, seed, sigma, run_id, layer, uploaded) -> scheme_sample.SchemeSample:
    """One column; scheme "uploaded" samples the user's matrix (a numpy array) as a learned one."""
    name = gallery.sampled_as(scheme)
    learned_cov = uploaded if scheme == gallery.UPLOADED else (
        learned_layers(run_id)[layer] if init.get_scheme(name).needs_source else None)
    return scheme_sample.scheme_sample(name, k, n_show, n_sample, seed,
                                       sigma=sigma if labels.uses_sigma(name) else None, learned=learned_cov)


@st.cache_resource(max_entries=32, show_spinner=False)  # read-only figure: no unpickling
def column_figures(scheme, k, n_show, n_sample, seed, sigma, run_id, layer, uploaded, width: int) -> tuple:
    """One column's figures (filter grid, sample vs target covariance, mean |FFT|) for a column
    `width` pixels wide, built once per setting."""
    p = panel(scheme, k, n_show, n_sample, seed, sigma, run_id, layer, uploaded)
    size = gallery.column_layout(width, k, n_show, n_sample)
    return (plots.filter_grid_figure(p.filters, columns=size.grid_columns, height=size.grid_height,
                                     title=size.grid_title),
            plots.covariance_pair_figure(p.empirical, p.target, height=size.pair_height,
                                         panel_px=size.pair_panel_px,
                                         title=f"Covariance: error {p.relative_error:.3f}"),
            plots.spectrum_figure(p.spectrum, title=size.spectrum_title, height=size.spectrum_height))


def uploaded_covariance(k: int) -> np.ndarray | None:
    """The sidebar's covariance upload: the matrix to sample from, or None (problems shown). It is
    sampled at the gallery's kernel size k, resized like a learned covariance."""
    upload = st.file_uploader("Covariance matrix (.npy, .pt, .safetensors)", key="gallery_upload",
                              type=[s.lstrip(".") for s in matrix_files.MATRIX_SUFFIXES],
                              help="A k² × k² covariance of k × k filters, pixels in row-major order "
                                   "(index k·i + j), e.g. one saved by the Covariance Explorer.")
    if upload is None:
        return None
    try:
        report = uploaded_report(upload.getvalue(), upload.name)
    except ValueError as err:
        st.error(f"This file cannot be used: {err}")
        return None
    if (too_small := too_small_kernel(upload.name, report.kernel_size)) is not None:
        st.error(f"This file cannot be used: {too_small}.")
        return None
    st.caption(gallery.upload_caption(upload.name, report.describe(), report.kernel_size, k))
    if report.psd:
        return report.matrix.numpy()
    st.warning(f"{upload.name} is not positive semi-definite (smallest eigenvalue "
               f"{report.min_eigenvalue:.3g}), so no Gaussian has it as covariance.")
    if not st.checkbox("Project it onto the nearest PSD matrix (negative eigenvalues set to 0)",
                       key="gallery_project"):
        return None
    matrix, change = matrix_files.projected(report)
    st.caption(f"Projected: the matrix changed by {change:.1%} (relative Frobenius norm).")
    return matrix.numpy()


def resample() -> None:
    st.session_state.gallery_seed = (st.session_state.gallery_seed + 1) % 2**31


def scheme_widgets(runs: list) -> tuple[list[str], int, float, int | None, int]:
    """The schemes, kernel size, σ and the learned covariance's run and layer (0-based)."""
    by_label = {labels.scheme_label(name): name for name in labels.scheme_names(include_learned=bool(runs))}
    st.header("Schemes")
    chosen = st.multiselect("Init schemes", list(by_label), key="gallery_schemes",
                            default=[labels.scheme_label("default"), labels.scheme_label("gaussian")])
    schemes = [by_label[label] for label in chosen]
    k = st.slider("Kernel size k", 3, min(15, settings.max_kernel_size()), 9, step=2, key="gallery_kernel_size")
    sigma = st.select_slider("σ of the closed forms (pixels)", labels.SIGMA_OPTIONS, value=2.0,
                             key="gallery_sigma", disabled=not any(map(labels.uses_sigma, schemes)),
                             help="The closed-form covariances' length scale and the Gaussian bump's width.")
    if not init.needing_source(schemes):
        return schemes, k, sigma, None, 0
    run_ids = {labels.run_label(summary): summary.id for summary in runs}
    run_id = run_ids[st.selectbox("Learned covariance from run", list(run_ids), key="gallery_run")]
    n_layers = len(learned_layers(run_id))
    reset_when_changed("gallery_layers_of", run_id, dict(gallery_layer=most_structured_layer(run_id) + 1))
    layer = st.slider("Layer", 1, n_layers, key="gallery_layer", disabled=n_layers == 1,
                      help="Opens on the layer with the widest bump the closed form fits "
                           "(the Learned Covariances page shows every layer).") - 1
    return schemes, k, sigma, run_id, layer


def sampling_widgets(runs: list) -> tuple[int, int]:
    """How many filters are shown and sampled; the seed and Resample."""
    st.header("Sampling")
    n_show = st.slider("Filters shown (N)", 1, 64, 16, key="gallery_n_show")
    n_sample = st.select_slider("Sample size for the covariance", gallery.SAMPLE_SIZES, value=20000,
                                key="gallery_n_sample", help="Move it to watch the empirical covariance converge: "
                                                             "the relative error shrinks like 1/√(sample size).")
    st.session_state.setdefault("gallery_seed", 0)
    st.number_input("Seed", 0, 2**31 - 1, step=1, key="gallery_seed")
    st.button("Resample", on_click=resample, key="gallery_resample", help="Draw again with the next seed.")
    if not runs:
        st.caption("A *learned covariance* scheme appears here once a training run with saved "
                   "covariances is in the run store.")
    return n_show, n_sample


def scheme_columns(schemes: list[str], k, n_show, n_sample, sigma, run_id, layer, uploaded) -> None:
    """One column per scheme, ROW_SCHEMES a row: filters, sample vs target covariance, spectrum."""
    per_row, width = gallery.columns(len(schemes))
    placed = [(column, scheme) for start in range(0, len(schemes), per_row)
              for column, scheme in zip(st.columns(per_row, gap="medium"), schemes[start:start + per_row])]
    for column, scheme in placed:
        with column:
            st.markdown(f"**{gallery.heading(scheme)}**")
            grid, pair, spectrum = column_figures(scheme, k, n_show, n_sample, st.session_state.gallery_seed, sigma,
                                                  run_id, layer, uploaded if scheme == gallery.UPLOADED else None,
                                                  width)
            # keyed by scheme: two schemes can draw the same figure (impulse and delta-orthogonal
            # filters share one flat spectrum)
            st.plotly_chart(grid, **CHART, key=f"gallery_grid_{scheme}")
            st.plotly_chart(pair, **CHART, key=f"gallery_covariance_{scheme}")
            st.caption(f"Tiled covariance of {n_sample:,} filters (sample) vs the scheme's target; "
                       "error = ‖sample − target‖_F / ‖target‖_F.")
            st.plotly_chart(spectrum, **CHART, key=f"gallery_spectrum_{scheme}")


st.title("Filter Gallery")
st.markdown(
    "Filters of one depthwise layer as each init scheme draws them, all at PyTorch's default "
    "per-weight variance 1 / (3k²) (the mean square, for the schemes whose mean is not zero) so only "
    "the *structure* differs. Under each grid: the covariance of a large sample next to the scheme's "
    "target covariance, and the filters' mean |FFT|. Besides the i.i.d. schemes and the closed-form "
    "covariances (Gaussian, Laplace, Matérn 3/2 and 5/2, rational quadratic), the "
    "structured inits of peers and of the seed papers (impulse, box, Gaussian bump, delta-orthogonal, "
    "all-pass) are offered: *What these schemes draw* says what each draws and where it comes from. "
    "Your own k² × k² covariance can be uploaded at the bottom of the sidebar."
)
with shown_errors():
    runs = stored_runs_or_warning(runs_with_learned_covariances, "the learned scheme is hidden")
    with st.sidebar:
        schemes, k, sigma, run_id, layer = scheme_widgets(runs)
        n_show, n_sample = sampling_widgets(runs)
        st.header("Your own covariance")
        uploaded = uploaded_covariance(k)
    if uploaded is not None:
        schemes.append(gallery.UPLOADED)
    if not schemes:
        st.info("Pick at least one init scheme in the sidebar, or upload a covariance matrix.")
        st.stop()
    if described := gallery.described(schemes):
        with st.expander("What these schemes draw"):
            st.markdown(described)
    scheme_columns(schemes, k, n_show, n_sample, sigma, run_id, layer, uploaded)
