"""Page tests (AppTest): the landing page, Covariance Explorer and Filter Gallery render cleanly by
default, with every widget at its extremes, and show the figures they promise; the gallery samples an
uploaded covariance and names what is wrong with a bad one."""

import ast
import json

import numpy as np
import pytest
import torch

from convcov_app.navigation import discover_pages
from convcov_app.store import add_bundled_example
from convcov_core import matrix_files
from convcov_core.covariance import gaussian
from convcov_core.plots import style
from convcov_core.scheme_sample import scheme_sample
from helpers.files import Payload, npy_bytes, torch_bytes
from helpers.pages import ROOT, assert_clean, check_all_at, check_widget_extremes, new_app, run_page

EXPLORER = "convcov_app/pages/1_Covariance_Explorer.py"
GALLERY = "convcov_app/pages/2_Filter_Gallery.py"


def test_landing_lists_every_page_with_a_link_and_shows_status():
    at = run_page("app.py")
    assert len(at.get("plotly_chart")) == 2  # closed-form covariance + sampled filters
    links = [link.proto.page for link in at.get("page_link")]
    pages = discover_pages()
    assert len(links) == len(pages) >= 2
    assert all(page.summary for page in pages), "every page needs a one-line module docstring"
    status = " ".join(m.value for m in at.markdown)
    for item in ("Device:", "torch", "timm", "streamlit", "Datasets available offline:", "runs.db"):
        assert item in status


def test_explorer_default_shows_heatmap_block_spectrum_factor_and_depth():
    at = run_page(EXPLORER)
    # main heatmap, selected block, eigenvalues, factor A, depth small multiples
    assert len(at.get("plotly_chart")) == 5
    assert len(at.get("download_button")) == 3
    assert any("Effective rank = exp" in c.value for c in at.caption)


def test_explorer_widgets_at_extremes():
    assert check_widget_extremes(EXPLORER, timeout=60) >= 18


@pytest.mark.parametrize("end", ["min", "max"])
def test_explorer_all_widgets_at_once(end):
    at = check_all_at(EXPLORER, end, timeout=90)
    assert len(at.get("plotly_chart")) == 5
    if end == "max":  # k = 51: the 2601 x 2601 matrix goes to the browser as an image
        assert any("sent as an image" in c.value for c in at.caption)


def test_explorer_kernel_cap_comes_from_environment(monkeypatch):
    monkeypatch.setenv("CONVCOV_MAX_KERNEL", "15")
    at = run_page(EXPLORER)
    assert at.slider(key="explorer_kernel_size").max == 15


def test_explorer_bad_kernel_cap_is_an_error_message_not_a_traceback(monkeypatch):
    monkeypatch.setenv("CONVCOV_MAX_KERNEL", "twelve")
    at = new_app(EXPLORER).run()
    assert not at.exception
    assert "CONVCOV_MAX_KERNEL" in at.error[0].value


def test_explorer_pixel_sliders_follow_kernel_size():
    at = run_page(EXPLORER)
    at.slider(key="explorer_pixel_row").set_value(8).run()
    at.slider(key="explorer_kernel_size").set_value(5).run()
    assert at.slider(key="explorer_pixel_row").max == 4
    assert at.slider(key="explorer_pixel_row").value == 2  # re-centred for the new size


def test_gallery_default_two_schemes_each_with_grid_covariance_spectrum():
    at = run_page(GALLERY)
    assert len(at.get("plotly_chart")) == 2 * 3
    headings = [m.value for m in at.markdown if m.value.startswith("**")]
    assert headings == ["**PyTorch default (uniform)**", "**Gaussian covariance**"]


def test_gallery_hides_learned_scheme_without_stored_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))  # an empty store (Home adds the example)
    at = run_page(GALLERY)
    assert "Learned covariance" not in at.multiselect(key="gallery_schemes").options


@pytest.mark.parametrize("script,hidden", [
    (GALLERY, "the learned scheme is hidden"),
    ("convcov_app/pages/5_Feature_Ansatz.py", "saved runs are hidden"),
    ("convcov_app/pages/6_Frequency_View.py", "saved runs are hidden"),
])
def test_a_damaged_run_store_hides_saved_runs_with_a_warning(script, hidden, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))
    (tmp_path / "runs.db").write_bytes(b"this is not an SQLite file" * 100)
    at = run_page(script, timeout=60)  # no exception, no error: the page works without its runs
    assert [w.value for w in at.warning if "The run store could not be read" in w.value][0].endswith(
        f"{hidden}.")


def test_gallery_widgets_at_extremes():
    assert check_widget_extremes(GALLERY, timeout=60) >= 12


@pytest.mark.parametrize("end", ["min", "max"])
def test_gallery_all_widgets_at_once(end):
    at = check_all_at(GALLERY, end, timeout=90)
    schemes = at.multiselect(key="gallery_schemes").value
    assert len(at.get("plotly_chart")) == 3 * len(schemes)


def test_gallery_resample_moves_to_next_seed():
    at = run_page(GALLERY)
    seed = at.number_input(key="gallery_seed").value
    at.button(key="gallery_resample").click().run()
    assert at.number_input(key="gallery_seed").value == seed + 1


def test_gallery_offers_learned_covariance_of_a_stored_run(monkeypatch, tmp_path):
    runs = pytest.importorskip("convcov_core.runs")
    from convcov_core import covariance
    from convcov_core.train import RunResult, TrainConfig

    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))
    covs = [covariance.gaussian(7, sigma) for sigma in (1.0, 2.5)]
    result = RunResult(config=TrainConfig(kernel_size=7), history={}, final={"test_acc": 91.5},
                       status="ok", message="", wall_time=1.0, device="cpu",
                       layer_names=["blocks.0", "blocks.1"], covariances=covs)
    runs.RunStore().save(result, name="gaussian-init")

    at = run_page(GALLERY)
    label = "Learned covariance"
    assert label in at.multiselect(key="gallery_schemes").options
    at.multiselect(key="gallery_schemes").set_value([label]).run()
    assert_clean(at, "learned scheme selected")
    assert "#1 gaussian-init" in at.selectbox(key="gallery_run").value
    assert len(at.get("plotly_chart")) == 3
    for layer in (1, 2):
        at.slider(key="gallery_layer").set_value(layer).run()
        assert_clean(at, f"learned layer {layer}")
        assert len(at.get("plotly_chart")) == 3  # grid, covariance pair, spectrum


# What the pages compute (convcov_core.ui), checked without streamlit.


@pytest.mark.parametrize("scheme", ["default", "kaiming_normal", "orthogonal", "gaussian"])
def test_gallery_sample_covariance_approaches_the_target(scheme):

    small = scheme_sample(scheme, 5, 4, 200, seed=1, sigma=1.5)
    large = scheme_sample(scheme, 5, 4, 20000, seed=1, sigma=1.5)
    assert small.filters.shape == (4, 5, 5)
    assert large.relative_error < 0.1
    assert large.relative_error <= small.relative_error


def test_covariance_downloads_load_back_exactly(tmp_path):
    import io

    import numpy as np
    import torch

    from convcov_core import covariance

    S = covariance.gaussian(5, 1.3)
    assert torch.equal(torch.from_numpy(np.load(io.BytesIO(matrix_files.covariance_bytes(S, "npy")))), S)
    assert torch.equal(torch.load(io.BytesIO(matrix_files.covariance_bytes(S, "pt")), weights_only=True), S)
    with pytest.raises(ValueError, match="npy"):
        matrix_files.covariance_bytes(S, "csv")
    layers = [S, 2 * S]  # a learned set: what compare --learned-from FILE and init_depthwise_ take
    stack = torch.load(io.BytesIO(matrix_files.covariance_bytes(layers, "pt")), weights_only=True)
    assert stack.shape == (2, 25, 25) and torch.equal(stack[1], 2 * S)


def _upload(at, name: str, data: bytes):
    at.get("file_uploader")[0].set_value((name, data, "application/octet-stream"))
    return at.run()


def test_gallery_samples_an_uploaded_covariance_resized_to_k():
    at = run_page(GALLERY)
    _upload(at, "mine.npy", npy_bytes(gaussian(5, 1.5).numpy()))
    assert_clean(at, "good upload")
    headings = [m.value for m in at.markdown if m.value.startswith("**")]
    assert headings[-1] == "**Your covariance (uploaded)**" and len(at.get("plotly_chart")) == 3 * 3
    captions = [c.value for c in at.caption]
    assert any("mine.npy: 25 × 25 covariance of 5 × 5 filters" in c for c in captions)
    assert any("mine.npy" in c and "k = 9" in c for c in captions)  # sampled at the gallery's k, not its own 5


def test_gallery_projects_a_non_psd_upload_only_with_consent():
    S = gaussian(3, 1.0)
    w, V = torch.linalg.eigh(S)
    w[0] = -0.2
    at = _upload(run_page(GALLERY), "bad.pt", torch_bytes((V * w) @ V.T))
    assert not at.exception and "not positive semi-definite (smallest eigenvalue -0.2)" in at.warning[0].value
    assert len(at.get("plotly_chart")) == 2 * 3  # not sampled until the user agrees
    at.checkbox(key="gallery_project").check().run()
    assert_clean(at, "projected upload")
    assert len(at.get("plotly_chart")) == 3 * 3
    assert any(c.value.startswith("Projected: the matrix changed by") for c in at.caption)


@pytest.mark.parametrize("name, data, message", [
    ("wrong.npy", npy_bytes(np.eye(80)), "side 80 is not a perfect square"),
    ("skew.npy", npy_bytes(np.triu(np.ones((9, 9)))), "must be symmetric"),
    ("nan.npy", npy_bytes(np.full((9, 9), np.nan)), "NaN"),
    ("junk.pt", b"not a torch file", "not a readable .pt matrix"),
    # drew flat filters, and no message (the Learned Covariances page shows the same words)
    ("one.npy", npy_bytes(np.ones((1, 1))), "This file cannot be used: one.npy holds covariances of 1 × 1 filters "
     "(1 × 1 matrices): filters of at least 3 × 3 pixels are needed to show, fit or resize a spatial covariance; "
     "upload the k² × k² covariance of k × k filters, e.g. 81 × 81 for 9 × 9 filters."),
    ("two.npy", npy_bytes(np.eye(4)), "two.npy holds covariances of 2 × 2 filters (4 × 4 matrices)"),
])
def test_gallery_names_what_is_wrong_with_a_bad_upload(name, data, message):
    at = _upload(run_page(GALLERY), name, data)
    assert not at.exception
    assert len(at.error) == 1 and message in at.error[0].value
    assert len(at.get("plotly_chart")) == 2 * 3  # the rest of the gallery is still there


def test_gallery_upload_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    at = _upload(run_page(GALLERY), "evil.pt", torch_bytes({"x": Payload(str(marker))}))
    assert not marker.exists() and not at.exception
    assert "unpickling" in at.error[0].value


def test_explorer_outlines_the_selected_tile_and_keeps_the_tile_lines():
    def shapes(at):
        return json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["shapes"]

    at = run_page(EXPLORER)  # k = 9, centre pixel (4, 4)
    for row, top in ((4, 4 * 9 - 0.5), (0, -0.5)):
        at.slider(key="explorer_pixel_row").set_value(row).run()
        found = shapes(at)
        outlines = [s for s in found if s.get("name") == "outline"]
        assert sum(s.get("name") == "tile line" for s in found) == 2 * (9 - 1)
        assert len(outlines) == 1 and outlines[0]["y0"] == top and outlines[0]["x0"] == 4 * 9 - 0.5


#: Pages that draw charts only once something has run here (a sweep).
NO_CHART_ON_A_FRESH_STORE = ("Sweeps",)


@pytest.mark.parametrize("script", ["app.py", *[f"convcov_app/pages/{page.path.name}" for page in discover_pages()
                                               if page.title not in NO_CHART_ON_A_FRESH_STORE]])
def test_every_chart_is_drawn_in_the_figures_own_look(script, tmp_path, monkeypatch):
    """Charts are drawn with theme=None and carry style.TEMPLATE: Streamlit's theme, applied anew on
    every redraw, made plotly.js recalculate and re-lay-out figures that had not changed
    (benchmarks/browser_latency.py)."""
    monkeypatch.setenv("CONVCOV_HOME", str(tmp_path))
    add_bundled_example()  # as the app does on start
    charts = run_page(script).get("plotly_chart")
    assert charts, f"{script} shows no chart on a fresh run store"
    for chart in charts:
        assert chart.proto.theme == "", f"{script}: a chart drawn with Streamlit's theme"
        template = json.loads(chart.proto.spec)["layout"]["template"]["layout"]
        assert template["font"]["family"] == style.TEMPLATE.layout.font.family, script


def test_every_plotly_chart_call_passes_the_shared_chart_settings():
    """The pages that draw charts only after a run use the same settings (checked in their source)."""
    sources = [ROOT / "app.py", *(ROOT / "convcov_app").glob("**/*.py")]
    calls = [(path.name, node.lineno, node) for path in sources for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "plotly_chart"]
    assert len(calls) >= 35  # the sources were found (curve_charts draws the loss and accuracy of several pages)
    assert not [(name, line) for name, line, call in calls
                if not any(k.arg is None and getattr(k.value, "id", None) == "CHART" for k in call.keywords)]
