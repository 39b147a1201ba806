"""Sample filters from each init scheme side by side, with their covariance and mean spectrum."""

import math

import numpy as np
import streamlit as st

from convcov_app import labels
from convcov_app.navigation import page_setup
from convcov_app.store import learned_covariances, runs_with_learned_covariances
from convcov_app.support import CHART, reset_when_changed, shown_errors, stored_runs_or_warning
from convcov_app.uploads import too_small_kernel
from convcov_core import learned_sets, matrix_files, plots, scheme_sample, settings

page_setup("Filter Gallery")

SAMPLE_SIZES = (100, 300, 1000, 3000, 10000, 20000)
UPLOADED_LABEL = "Your covariance (uploaded)"
ROW_SCHEMES = 3  # schemes side by side; more start a new row


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
    learned_cov = None
    if scheme == "learned":
        learned_cov = learned_layers(run_id)[layer]
    elif scheme == "uploaded":
        learned_cov = uploaded
    name = "learned" if scheme == "uploaded" else scheme
    return scheme_sample.scheme_sample(name, k, n_show, n_sample, seed,
                                       sigma=sigma if labels.uses_sigma(name) else None, learned=learned_cov)


@st.cache_resource(max_entries=32, show_spinner=False)  # read-only figure: no unpickling
def column_figures(scheme, k, n_show, n_sample, seed, sigma, run_id, layer, uploaded, width: int) -> tuple:
    """One column's figures (filter grid, sample vs target covariance, mean |FFT|) for a column
    `width` pixels wide, built once per setting."""
    p = panel(scheme, k, n_show, n_sample, seed, sigma, run_id, layer, uploaded)
    grid_columns = math.ceil(math.sqrt(n_show))
    grid_height = int((width - 20) * math.ceil(n_show / grid_columns) / grid_columns) + 98
    spectrum_title = f"Mean |FFT| of {min(n_sample, scheme_sample.SPECTRUM_FILTERS):,} filters"
    return (plots.filter_grid_figure(p.filters, columns=grid_columns, height=grid_height,
                                     title=f"{n_show} filter{'s' if n_show > 1 else ''}, {k} × {k}"),
            plots.covariance_pair_figure(p.empirical, p.target, height=int((width - 20) * 0.47) + 118,
                                         # each panel drew 89 px wide in a 252 px column (Chromium, 1280 px
                                         # window): an image no larger keeps every one-pixel diagonal dot
                                         panel_px=int((width - 20) * 0.47 * 0.8),
                                         title=f"Covariance: error {p.relative_error:.3f}"),
            plots.spectrum_figure(p.spectrum, title=spectrum_title, height=width + 70))


def uploaded_covariance(k: int) -> np.ndarray | None:
    """The sidebar's covariance upload: the matrix to sample from, or None (problems shown). It is
    sampled at the gallery's kernel size k, resized like a learned covariance."""
    upload = st.file_uploader("Covariance matrix (.npy, .pt, .safetensors)", key="cov_upload",
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
    resized = f" Sampled at k = {k}, resized as a learned covariance is." if report.kernel_size != k else ""
    st.caption(f"{upload.name}: {report.describe()}.{resized}")
    if report.psd:
        return report.matrix.numpy()
    st.warning(f"{upload.name} is not positive semi-definite (smallest eigenvalue "
               f"{report.min_eigenvalue:.3g}), so no Gaussian has it as covariance.")
    if not st.checkbox("Project it onto the nearest PSD matrix (negative eigenvalues set to 0)",
                       key="cov_project"):
        return None
    matrix, change = matrix_files.projected(report)
    st.caption(f"Projected: the matrix changed by {change:.1%} (relative Frobenius norm).")
    return matrix.numpy()


def resample() -> None:
    st.session_state.seed = (st.session_state.seed + 1) % 2**31


st.title("Filter Gallery")
st.markdown(
    "Filters of one depthwise layer as each init scheme draws them, all at PyTorch's default "
    "per-weight variance 1 / (3k²) (the mean square, for the schemes whose mean is not zero) so only "
    "the *structure* differs. Under each grid: the covariance of a large sample next to the scheme's "
    "target covariance, and the filters' mean |FFT|. Besides the i.i.d. and covariance schemes, the "
    "structured inits of peers and of the seed papers (impulse, box, Gaussian bump, delta-orthogonal, "
    "all-pass) are offered: *What these schemes draw* says what each draws and where it comes from. "
    "Your own k² × k² covariance can be uploaded at the bottom of the sidebar."
)

with shown_errors():
    runs = stored_runs_or_warning(runs_with_learned_covariances, "the learned scheme is hidden")
    by_label = {labels.scheme_label(name): name for name in labels.scheme_names(include_learned=bool(runs))}
    with st.sidebar:
        st.header("Schemes")
        chosen = st.multiselect("Init schemes", list(by_label), key="schemes",
                                default=[labels.scheme_label("default"), labels.scheme_label("gaussian")])
        schemes = [by_label[label] for label in chosen]
        k = st.slider("Kernel size k", 3, min(15, settings.max_kernel_size()), 9, step=2, key="kernel_size")
        sigma = st.select_slider("σ of the Gaussian schemes (pixels)", labels.SIGMA_OPTIONS, value=2.0,
                                 key="sigma", disabled=not any(map(labels.uses_sigma, schemes)),
                                 help="The Gaussian covariance's correlation length and the Gaussian "
                                      "bump's width.")
        run_id, layer = None, 0
        if "learned" in schemes:
            run_ids = {labels.run_label(summary): summary.id for summary in runs}
            run_id = run_ids[st.selectbox("Learned covariance from run", list(run_ids), key="run")]
            n_layers = len(learned_layers(run_id))
            reset_when_changed("gallery_layers_of", run_id, dict(layer=most_structured_layer(run_id) + 1))
            layer = st.slider("Layer", 1, n_layers, key="layer", disabled=n_layers == 1,
                              help="Opens on the layer with the widest bump the closed form fits "
                                   "(the Learned Covariances page shows every layer).") - 1
        st.header("Sampling")
        n_show = st.slider("Filters shown (N)", 1, 64, 16, key="n_show")
        n_sample = st.select_slider("Sample size for the covariance", SAMPLE_SIZES, value=20000,
                                    key="n_sample",
                                    help="Move it to watch the empirical covariance converge: the "
                                         "relative error shrinks like 1/√(sample size).")
        if "seed" not in st.session_state:
            st.session_state.seed = 0
        st.number_input("Seed", 0, 2**31 - 1, step=1, key="seed")
        st.button("Resample", on_click=resample, key="resample", help="Draw again with the next seed.")
        if not runs:
            st.caption("A *learned covariance* scheme appears here once a training run with saved "
                       "covariances is in the run store.")
        st.header("Your own covariance")
        uploaded = uploaded_covariance(k)
        if uploaded is not None:
            schemes.append("uploaded")

    if not schemes:
        st.info("Pick at least one init scheme in the sidebar, or upload a covariance matrix.")
        st.stop()

    described = [f"- **{labels.scheme_label(name)}**: {labels.scheme_help(name)}"
                 for name in schemes if name != "uploaded"]
    if described:
        with st.expander("What these schemes draw"):
            st.markdown("\n".join(described))

    # Figure heights follow the column width so square plots fill their column without blank
    # bands: at a 1280 px window the main area is 820 px wide, split with 32 px gaps. At most
    # ROW_SCHEMES columns a row, so a 15 x 15 covariance, the colour bars and the headers keep room;
    # a single scheme's plots stop growing at 480 px.
    per_row = min(ROW_SCHEMES, len(schemes))
    width = min(480, (820 - 32 * (per_row - 1)) // per_row)
    placed = [(column, scheme) for start in range(0, len(schemes), per_row)
              for column, scheme in zip(st.columns(per_row, gap="medium"), schemes[start:start + per_row])]
    for column, scheme in placed:
        with column:
            st.markdown(f"**{UPLOADED_LABEL if scheme == 'uploaded' else labels.scheme_label(scheme)}**")
            grid, pair, spectrum = column_figures(scheme, k, n_show, n_sample, st.session_state.seed, sigma,
                                                  run_id, layer, uploaded if scheme == "uploaded" else None,
                                                  width)
            # keyed by scheme: two schemes can draw the same figure (impulse and delta-orthogonal
            # filters share one flat spectrum)
            st.plotly_chart(grid, **CHART, key=f"grid_{scheme}")
            st.plotly_chart(pair, **CHART, key=f"covariance_{scheme}")
            st.caption(f"Tiled covariance of {n_sample:,} filters (sample) vs the scheme's target; "
                       "error = ‖sample − target‖_F / ‖target‖_F.")
            st.plotly_chart(spectrum, **CHART, key=f"spectrum_{scheme}")
