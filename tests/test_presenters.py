"""The pages' presenters (convcov_app/<page>.py): what a page computes and says, without a server."""

from convcov_app import explorer


def test_explorer_maps_a_click_to_the_pixel_of_its_tile_or_row():
    assert explorer.clicked_pixel(2 * 9 + 3.2, 5 * 9 + 8.4, 9, "tiled") == (5, 2)
    assert explorer.clicked_pixel(0.0, 3 * 9 + 7.0, 9, "flat") == (3, 7)
    assert explorer.clicked_pixel(-3.0, 200.0, 9, "tiled") == (8, 0)  # clamped to the kernel


def test_explorer_says_when_the_matrix_comes_as_an_image():
    assert "sent as an image" in explorer.matrix_caption(51, "tiled")
    assert explorer.matrix_caption(9, "tiled").endswith("Click a tile to select its pixel.")
    assert "Click" not in explorer.matrix_caption(9, "flat")
    assert "centre pixel's block" in explorer.schedule_caption(31) and "grey lines" in explorer.schedule_caption(9)
