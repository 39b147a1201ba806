"""Which closed-form family fits each layer of a learned covariance set: every family in
covariance.FAMILIES fitted to every layer (covariance.fit_families), and the best one per layer.

Fit: both matrices scaled to unit mean diagonal; sigma minimizes sum_pq (kernel(d_pq) - S_pq)^2; the
quality is the Pearson r of all k^4 entries.

Best: the family with the highest r. Every family has the one parameter sigma, fitted the same way,
so r (or the squared error left at the fitted sigma) compares them without a penalty for
complexity. r is used because it is the quality the page and `learned` show for each fit, and it
does not count against a family the part of a learned layer no unit-diagonal kernel can match (a
weaker off-diagonal overall, a constant offset). On the bundled example the two criteria pick a
different family only where the r of the two differ by less than 0.003. Gaps in r below CLOSE_R
are read as a tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from . import covariance

#: Differences in r smaller than this are read as a tie: about one standard deviation between seeds of
#: a layer's gap from the Gaussian to the best family (0.001-0.03 per layer, mostly 0.005-0.015, in the
#: default-init runs of reports/regimes/cpu and reports/quick; docs/learned.md).
CLOSE_R = 0.01


@dataclass(frozen=True)
class FamilyFit:
    """One family's best sigma (pixels) and Pearson r on one layer."""

    family: str
    sigma: float
    r: float


@dataclass(frozen=True)
class LayerFamilies:
    """One layer's fits (layer counted from 1), one per family in covariance.FAMILIES order."""

    layer: int
    fits: tuple[FamilyFit, ...]

    def of(self, family: str) -> FamilyFit:
        """The fit of `family` (ValueError for an unknown one)."""
        covariance.check_family(family)
        return next(f for f in self.fits if f.family == family)

    @property
    def best(self) -> FamilyFit | None:
        """The fit with the highest r; None when no r is a number (a constant layer has no correlation)."""
        fitted = [f for f in self.fits if not math.isnan(f.r)]
        return max(fitted, key=lambda f: f.r) if fitted else None

    @property
    def gaussian_gap(self) -> float:
        """How far the Gaussian's r falls short of the best: best r - Gaussian r (0 when it is best,
        NaN when no family has an r)."""
        return math.nan if self.best is None else self.best.r - self.of("gaussian").r


def family_fits(covariances: list[Tensor]) -> list[LayerFamilies]:
    """Every family's fit to every layer (k^2 x k^2 covariances, first layer first)."""
    if not covariances:
        raise ValueError("no layers to fit")
    return [LayerFamilies(layer, tuple(FamilyFit(family, *fit) for family, fit in covariance.fit_families(S).items()))
            for layer, S in enumerate(covariances, start=1)]


def best_layers(rows: list[LayerFamilies]) -> dict[str, list[int]]:
    """Family -> the layers it fits best, most layers first (ties in FAMILIES order); families that
    fit no layer best, and layers without a best, are left out."""
    found = {family: [row.layer for row in rows if row.best is not None and row.best.family == family]
             for family in covariance.FAMILIES}
    return dict(sorted(((f, layers) for f, layers in found.items() if layers), key=lambda item: -len(item[1])))
