"""The Covariance Explorer's presenter: the pixel a chart click selects, and what the page says about the
matrix, its eigenvalues, the downloads and the depth schedule at a kernel size. No streamlit here."""

from __future__ import annotations

from convcov_core.plots.covariance import TILE_LINES_MAX_K
from convcov_core.plots.matrix_image import HEATMAP_MAX_CELLS

VIEWS = ("tiled", "flat")
SCALES = ("shared", "per block")


def clicked_pixel(x: float, y: float, k: int, view: str) -> tuple[int, int]:
    """The pixel (i, j) a click at chart coordinates (x, y) selects: tile (i, j) in the tiled view, row
    k*i + j in the flat one; clamped to the kernel."""
    x, y = round(x), round(y)
    i, j = (y // k, x // k) if view == "tiled" else divmod(y, k)
    return min(max(i, 0), k - 1), min(max(j, 0), k - 1)


def matrix_caption(k: int, view: str) -> str:
    """Under the matrix: what hover and click show, or why a large matrix comes as an image."""
    if k ** 4 > HEATMAP_MAX_CELLS:
        return (f"At k = {k} the {k * k} × {k * k} matrix is sent as an image of block averages, coloured on "
                "their own range (a tile's bump covers few of its cells, so the averages peak lower than the "
                "matrix): hover shows row and column only; the block on the right has exact values on hover.")
    return "Hover a cell for its pixel pair and covariance." + (" Click a tile to select its pixel."
                                                                 if view == "tiled" else "")


def rank_caption(rank: float, k: int) -> str:
    return ("Effective rank = exp(−Σ pₙ log pₙ) with pₙ = λₙ / Σλ: the number of equally strong directions that "
            f"would give the same eigenvalue entropy ({rank:.1f} of {k * k} here). The eigenvalues are the "
            "products a_p·a_q of the eigenvalues of A.")


def download_name(k: int, sigma: float) -> str:
    """The downloads' file name without its suffix."""
    return f"gaussian_k{k}_sigma{sigma:g}"


def schedule_caption(k: int) -> str:
    """Under the depth schedule: tiled panels up to TILE_LINES_MAX_K, the centre pixel's block above."""
    if k <= TILE_LINES_MAX_K:
        return f"Tiled covariances at k = {k} (grey lines between tiles), one shared colour scale."
    return (f"At k = {k} a panel has fewer pixels than the {k * k} × {k * k} tiled view has cells, so each panel "
            f"shows the centre pixel's block: how pixel ({k // 2}, {k // 2}) co-varies with every pixel. One "
            "shared colour scale.")
