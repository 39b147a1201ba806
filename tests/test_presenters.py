"""The pages' presenters (convcov_app/<page>.py): what a page computes and says, without a server."""

from types import SimpleNamespace

from convcov_app import ansatz, claims, explorer, frequency_view, gallery, lab, lab_form, labels, learned
from convcov_core import models


def test_explorer_maps_a_click_to_the_pixel_of_its_tile_or_row():
    assert explorer.clicked_pixel(2 * 9 + 3.2, 5 * 9 + 8.4, 9, "tiled") == (5, 2)
    assert explorer.clicked_pixel(0.0, 3 * 9 + 7.0, 9, "flat") == (3, 7)
    assert explorer.clicked_pixel(-3.0, 200.0, 9, "tiled") == (8, 0)  # clamped to the kernel


def test_explorer_says_when_the_matrix_comes_as_an_image():
    assert "sent as an image" in explorer.matrix_caption(51, "tiled")
    assert explorer.matrix_caption(9, "tiled").endswith("Click a tile to select its pixel.")
    assert "Click" not in explorer.matrix_caption(9, "flat")
    assert "centre pixel's block" in explorer.schedule_caption(31) and "grey lines" in explorer.schedule_caption(9)


def test_gallery_puts_three_schemes_a_row_and_sizes_their_figures():
    assert gallery.columns(1) == (1, 480) and gallery.columns(5) == (3, 252)
    layout = gallery.column_layout(252, 9, 16, 20000)
    assert layout.grid_columns == 4 and layout.grid_title == "16 filters, 9 × 9"
    assert layout.spectrum_title == "Mean |FFT| of 256 filters" and layout.pair_panel_px == 87
    assert gallery.column_layout(252, 9, 1, 100).grid_title == "1 filter, 9 × 9"


def test_gallery_says_what_the_schemes_draw_and_samples_an_upload_as_learned():
    assert gallery.described([gallery.UPLOADED]) == ""
    described = gallery.described(["gaussian", gallery.UPLOADED])
    assert described.startswith("- **Gaussian covariance**: Samples of N(0, v S)") and "\n" not in described
    assert gallery.sampled_as(gallery.UPLOADED) == "learned"
    assert gallery.heading(gallery.UPLOADED) == gallery.UPLOADED_LABEL
    assert gallery.upload_caption("a.npy", "25 × 25", 5, 5) == "a.npy: 25 × 25."
    assert "Sampled at k = 9" in gallery.upload_caption("a.npy", "25 × 25", 5, 9)


def test_the_lab_form_shows_every_preset_and_a_custom_convmixer():
    for name, preset in lab.PRESETS.items():
        values = lab_form.widget_values(preset.setup, 9)
        assert values["lab_model"] in lab_form.MODEL_CHOICES, name
        assert set(values["lab_inits"]) <= set(lab_form.SCHEME_BY_LABEL), name
    training = lab.lab_training(model=models.convmixer_spec(48, 5, "small"), kernel_size=7)
    custom = lab.LabSetup(training, inits=("default",))
    values = lab_form.widget_values(custom, 9)
    assert values["lab_model"] == lab_form.CUSTOM_MODEL
    assert (values["lab_width"], values["lab_depth"], values["lab_spatial"]) == (48, 5, "NIFF, small MLP (2-8-4-C)")
    assert lab_form.preset_sizes(lab_form.CUSTOM_MODEL, 9) is None


def test_the_lab_offers_the_schemes_a_model_can_start_from():
    label = labels.scheme_label
    assert lab_form.offered_schemes(9, True, {}) == [label("default")]
    filters = lab_form.offered_schemes(9, False, {})
    assert label("gaussian") in filters and label("learned") not in filters and label("mimetic") not in filters
    assert label("learned") in lab_form.offered_schemes(9, False, {"set: a": ("set", "a")})
    assert lab_form.offered_schemes(None, False, {}) == [label("default"), label("mimetic")]


def test_lab_history_lists_comparisons_then_the_runs_outside_them():
    cmp = SimpleNamespace(id=3, created="2026-01-02T03:04:05", variants=["default", "gaussian"], dataset="mnist5k",
                          seeds=[0, 1], status="cancelled")
    inside = SimpleNamespace(id=7, comparison_id=3)
    alone = SimpleNamespace(id=8, comparison_id=None, created="2026-01-02T05:06:07", init="gaussian",
                            model="convmixer-64/8", dataset="mnist5k", test_acc=91.25, status="ok")
    assert lab.history_options([cmp], [inside, alone]) == {
        "comparison #3 (2026-01-02 03:04): default, gaussian on mnist5k, 2 seed(s) [cancelled]": ("c", 3),
        "run #8 (2026-01-02 05:06): gaussian convmixer-64/8 on mnist5k, test 91.2%": ("r", 8)}


def test_learned_covariances_names_sets_and_says_what_resizing_does():
    assert learned.set_name("run 4/x", 15, 6) == "run-4-x-k15-d6" and len(learned.set_name("a" * 80, 9, 8)) == 60
    assert learned.name_hint("convnext_atto.d2_in1k".split(".")[0]) == "convnext-atto"
    assert learned.name_hint("my file!.npy".rsplit(".", 1)[0], 30) == "my-file-"
    fits = [{"layer": 1, "sigma": 0.6, "r": 0.9}, {"layer": 2, "sigma": 1.3, "r": 0.8}]
    assert learned.layer_titles(fits) == ["1: σ = 0.60, r = 0.90", "2: σ = 1.30, r = 0.80"]
    assert "opens on layer 2, the widest bump" in learned.opened_caption(fits)
    assert "(k′ − 1)/(k − 1) = 1.75" in learned.resize_caption(9, 15, fits, fits)
    assert learned.transfer_step(12) == 1 and learned.transfer_step(32) == 2
    assert learned.transfer_notes(9, 9, 8) == [] and len(learned.transfer_notes(9, 17, 24)) == 2
    assert learned.nothing_to_show(learned.QUICK, "cmd") is None
    assert "`cmd`" in learned.nothing_to_show(learned.ATTENTION, "cmd")


def test_feature_ansatz_says_what_it_shows():
    assert ansatz.gradients_of(ansatz.ALL_OUTPUTS) == "all" and ansatz.gradients_of(ansatz.PREDICTED) == "predicted"
    assert "Tile (i, j)" in ansatz.matrices_caption(1) and "(channel, row, column)" in ansatz.matrices_caption(3)
    assert "small init on digits" in ansatz.eigenfilters_caption(1, small_cnn=True)
    assert "small init" not in ansatz.eigenfilters_caption(3, small_cnn=False)
    line = ansatz.model_line(SimpleNamespace(label="cnn-8", test_acc=91.26))
    assert line == "**Model:** cnn-8, test accuracy 91.3%."
    assert ansatz.model_line(SimpleNamespace(label="upload", test_acc=None)) == "**Model:** upload."


def test_the_frequency_view_offers_runs_by_what_a_source_reads():
    runs = [SimpleNamespace(has_weights=False), SimpleNamespace(has_weights=True)]
    assert frequency_view.offered_runs(runs, "learned") == runs
    assert frequency_view.offered_runs(runs, "trained") == runs[1:]
    assert frequency_view.from_network("trained") and not frequency_view.from_network("gaussian")
    assert "(dashed:" in frequency_view.profile_caption(True)
    assert "(dashed:" not in frequency_view.profile_caption(False)
    assert frequency_view.sigma_curve_caption(False).endswith("to place its layers here.")


def test_paper_claims_colours_verdicts_and_says_why_the_quick_suite_cannot_run_here():
    assert claims.verdict_text("supported") == ":green[**supported**]"
    assert claims.verdict_text("odd") == ":gray[**odd**]"
    assert "more than one job may use" in claims.run_caption(243, 2_000_000, 200_000, "CPU", [])
    took = claims.run_caption(243, 1000, 200_000, "CPU", [(None, {"suite": "quick", "wall_time_s": 90,
                                                                  "device_label": "a GPU"})])
    assert "The latest quick report took" in took and "on a GPU." in took
    row = claims.part_row({"statement": "s", "low": None, "n": 1, "verdict": "inconclusive"})
    assert row == {"test": "s", "numbers": "1 seed(s): too few for an interval", "verdict": "inconclusive"}
    table = claims.claims_table([{"id": 1, "title": "t", "our_number": "n", "verdict": "supported"}])
    assert table.endswith("| 1 | t | n | :green[**supported**] | not recorded (report from before regimes) |")
