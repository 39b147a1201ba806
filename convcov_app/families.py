"""What the Learned Covariances page says about the closed-form families (family_fits): the layer x
family table of r and sigma with each layer's best marked, and the sentence that answers "is the
learned structure Gaussian?" from those numbers."""

from __future__ import annotations

import math

import pandas as pd
from pandas.io.formats.style import Styler

from convcov_core.family_fits import CLOSE_R, LayerFamilies, best_layers

NAMES = {"gaussian": "Gaussian", "laplace": "Laplace", "matern32": "Matérn 3/2", "matern52": "Matérn 5/2",
         "rational-quadratic": "rational quadratic"}
BEST_STYLE = "background-color: rgba(33, 150, 83, 0.35)"
NEAR_STYLE = "background-color: rgba(33, 150, 83, 0.12)"
NO_BEST = "–"

CAPTION = ("Each cell: Pearson r of the family's closed form with the layer (1 = a perfect fit), and in "
           "brackets its best σ in pixels (each family's own length scale). Every family has the one "
           "parameter σ, fitted as the Gaussian's is, so their r compare directly. The highest is shaded "
           f"dark, and those within {CLOSE_R:g} of it light: too close to call. Laplace exp(−d/σ) has a sharp "
           "peak, Matérn 3/2 and 5/2 are smoother, the Gaussian exp(−d²/2σ²) the smoothest; rational "
           "quadratic (1 + d²/2σ²)⁻¹ has heavy tails.")


def layer_span(layers: list[int]) -> str:
    """Layer numbers as runs: [1, 2, 3, 5] -> "1–3 and 5"."""
    runs: list[list[int]] = []
    for layer in sorted(layers):
        if runs and layer == runs[-1][-1] + 1:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    return _listed([f"{run[0]}" if len(run) == 1 else f"{run[0]}–{run[-1]}" for run in runs])


def _listed(parts: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _layers(layers: list[int]) -> str:
    return f"layer{'s' if len(layers) > 1 else ''} {layer_span(layers)}"


def _shades(row: LayerFamilies, columns) -> list[str]:
    """CSS of one layer's cells: the best family's dark, those within CLOSE_R of it light."""
    fits = {NAMES[f.family]: f for f in row.fits}

    def shade(column: str) -> str:
        fit = fits.get(column)
        if fit is None or row.best is None or not row.best.r - fit.r < CLOSE_R:
            return ""
        return BEST_STYLE if fit.family == row.best.family else NEAR_STYLE
    return [shade(column) for column in columns]


def family_table(rows: list[LayerFamilies], layer_names: list[str]) -> Styler:
    """One row a layer: its best family, then each family's "r (σ)"; the best cell shaded dark, the
    families within CLOSE_R of it light."""
    frame = pd.DataFrame([{"layer": f"{row.layer}: {name}",
                           "best fit": NAMES[row.best.family] if row.best else NO_BEST,
                           **{NAMES[f.family]: f"{f.r:.3f} (σ {f.sigma:.2f})" for f in row.fits}}
                          for row, name in zip(rows, layer_names)])
    styles = pd.DataFrame([_shades(row, frame.columns) for row in rows], index=frame.index, columns=frame.columns)
    return frame.style.apply(lambda _: styles, axis=None)


def answer(rows: list[LayerFamilies]) -> str:
    """Which family fits best in how many layers, and where the Gaussian is (or is not) as good."""
    counts = [(NAMES[family], len(layers)) for family, layers in best_layers(rows).items()]
    if not counts:
        return "No family correlates with these layers (each is constant), so none fits best."
    (top, n), rest = counts[0], counts[1:]
    share = "every layer" if n == len(rows) else f"{n} of {len(rows)} layers"
    others = [f"{name} in {m}" for name, m in rest]
    first = f"{top[0].upper()}{top[1:]} fits best in " + _listed([share, *others])
    gaps = {row.layer: row.gaussian_gap for row in rows if not math.isnan(row.gaussian_gap)}
    close = [layer for layer, gap in gaps.items() if gap < CLOSE_R]
    behind = [layer for layer, gap in gaps.items() if gap >= CLOSE_R]
    if not behind:
        if top == NAMES["gaussian"] and n == len(rows):
            return first + "."
        return f"{first}; the Gaussian's r is within {CLOSE_R:g} of the best in every layer, so it fits about as well."
    lo, hi = (f"{f(gaps[layer] for layer in behind):.2f}" for f in (min, max))
    by = lo if lo == hi else f"{lo}–{hi}"
    if not close:
        return f"{first}; the Gaussian's r is behind by {by} in every layer."
    return (f"{first}; the Gaussian's r is within {CLOSE_R:g} of the best in {_layers(close)} and behind by {by} "
            f"in {_layers(behind)}.")
