"""The pages' presenters (convcov_app/<page>.py): what a page computes and says, without a server."""

from convcov_app import explorer, gallery


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
