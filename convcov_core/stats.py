"""Paired comparisons over seeds: differences, t intervals, one verdict rule, multi-part claims.

Two variants trained on the same seeds (same data order per seed) give per-seed differences
d_s = a_s - b_s. Over n seeds with mean d and sample standard deviation s_d, the 95% interval of
the true mean difference is

    d  ±  t(0.975, n - 1) * s_d / sqrt(n)

(Student's t, as the paired t-test). The one verdict rule: `a` wins when the whole interval lies
above 0, `b` when it lies below, no winner otherwise. That is the two-sided paired t-test at level
0.05, so when the true difference is 0 (and the d_s are roughly normal) it names a winner in at
most 5% of comparisons, at every seed count. With fewer than 2 seeds there is no estimate of seed
noise and the rule does not decide. With 2 seeds t(0.975, 1) = 12.7: the rule rarely decides,
and says so through the width of the interval.

Claims with several parts (reproduce): every test is one-sided at level 0.025, i.e. it reads the
same 95% interval. A claim is supported when every part is: an intersection-union test, whose
error rate is at most that of its parts, so no correction is needed. A claim is refuted when any
part is: a union of tests, so those p-values are Holm-corrected across the claim's parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as _scipy

LEVEL = 0.95
ALPHA = 1.0 - LEVEL


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def t_quantile(n: int, level: float = LEVEL) -> float:
    """t(1 - (1 - level) / 2, n - 1): the half-width of the interval in standard errors."""
    if n < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {n}")
    return float(_scipy.t.ppf(1.0 - (1.0 - level) / 2.0, n - 1))


@dataclass(frozen=True)
class Interval:
    """Mean of n values with its sample std (n - 1), standard error and 95% t interval [low, high]
    (std, se, low and high are None below 2 values)."""

    n: int
    mean: float | None
    std: float | None
    se: float | None
    low: float | None
    high: float | None

    def p_above(self, threshold: float) -> float | None:
        """One-sided p-value of "the true mean exceeds threshold" (t-test); None below 2 values."""
        return self._p(self.mean - threshold) if self.se is not None else None

    def p_below(self, threshold: float) -> float | None:
        """One-sided p-value of "the true mean is under threshold"."""
        return self._p(threshold - self.mean) if self.se is not None else None

    def _p(self, excess: float) -> float:
        if self.se == 0:
            return 0.0 if excess > 0 else 1.0
        return float(_scipy.t.sf(excess / self.se, self.n - 1))


def mean_interval(values, level: float = LEVEL) -> Interval:
    """The t interval of the mean of the finite values (None and NaN are left out)."""
    v = _finite(values)
    n = len(v)
    if n == 0:
        return Interval(0, None, None, None, None, None)
    mean = sum(v) / n
    if n < 2:
        return Interval(1, mean, None, None, None, None)
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    se = std / math.sqrt(n)
    half = t_quantile(n, level) * se
    return Interval(n, mean, std, se, mean - half, mean + half)


@dataclass(frozen=True)
class PairedVerdict:
    """The verdict on per-seed values a and b: diffs a - b, their mean, the 95% interval
    [low, high] of the mean difference, and winner "a", "b" or None (None also below 2 seeds)."""

    diffs: tuple
    mean: float | None
    std: float | None
    low: float | None
    high: float | None
    winner: str | None

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def favour_a(self) -> int:
        return sum(d > 0 for d in self.diffs)

    @property
    def favour_b(self) -> int:
        return sum(d < 0 for d in self.diffs)

    @property
    def decidable(self) -> bool:
        """Whether there were enough seeds (2) to judge at all."""
        return self.n >= 2

    def sentence(self, a: str, b: str, unit: str = "points") -> str:
        """The verdict in one sentence, e.g. "gaussian beat default by 2.1 points (95% interval
        +0.4 to +3.8, 5 seeds; 5/5 favour gaussian)."."""
        n = self.n
        if n == 0:
            return f"{a} vs {b}: no seed finished for both, nothing to compare."
        seeds = f"{n} seed{'s' if n != 1 else ''}"
        if n < 2:
            return (f"{a} vs {b}: {self.mean:+.1f} {unit} on a single seed; one seed says nothing about "
                    "seed noise, so no verdict (run 2 or more seeds).")
        span = f"95% interval {self.low:+.1f} to {self.high:+.1f}, {seeds}"
        if self.winner is None:
            return (f"{a} vs {b}: no clear winner, {self.mean:+.1f} {unit} ({span}; "
                    f"{self.favour_a}/{n} favour {a}).")
        win, lose, count = (a, b, self.favour_a) if self.winner == "a" else (b, a, self.favour_b)
        return (f"{win} beat {lose} by {abs(self.mean):.1f} {unit} ({span}; {count}/{n} favour {win}).")


def paired_verdict(a, b, level: float = LEVEL) -> PairedVerdict:
    """The one verdict rule on per-seed values of two variants (same seeds, same order; pairs with
    a None or non-finite value on either side are left out): winner "a" when the 95% t interval of
    mean(a - b) lies above 0, "b" when below, otherwise None."""
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"paired_verdict needs one value per seed on both sides, got {len(a)} and {len(b)}")
    diffs = tuple(float(x) - float(y) for x, y in zip(a, b)
                  if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y)))
    iv = mean_interval(diffs, level)
    winner = None
    if iv.low is not None and iv.low > 0:
        winner = "a"
    elif iv.high is not None and iv.high < 0:
        winner = "b"
    return PairedVerdict(diffs, iv.mean, iv.std, iv.low, iv.high, winner)


def holm(p_values, alpha: float = ALPHA / 2) -> list[bool]:
    """Holm's step-down correction: which hypotheses are rejected at family-wise level alpha
    (None p-values are never rejected and do not count)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    rejected = [False] * len(p_values)
    m = len(indexed)
    for rank, (p, i) in enumerate(indexed):
        if p > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


POWER = 0.8


def seeds_needed(effect: float, diff_std: float | None, power: float = POWER, level: float = LEVEL,
                 most: int = 1000) -> int | None:
    """Seeds a paired comparison needs to resolve a true mean difference `effect` (the verdict
    rule names a winner) with probability `power`, at a per-seed spread of differences `diff_std`:
    the smallest n >= 2 with

        (t(1 - (1 - level) / 2, n - 1) + t(power, n - 1)) * diff_std / sqrt(n)  <=  |effect|

    (the usual t-test sample size, iterated because t depends on n). None when diff_std is unknown,
    the effect is 0, or more than `most` seeds would be needed."""
    if diff_std is None or not effect:
        return None
    if diff_std == 0:
        return 2
    for n in range(2, most + 1):
        if (t_quantile(n, level) + float(_scipy.t.ppf(power, n - 1))) * diff_std / math.sqrt(n) <= abs(effect):
            return n
    return None


def detectable_effect(diff_std: float | None, n: int, power: float = POWER, level: float = LEVEL) -> float | None:
    """The smallest true mean difference that n paired seeds resolve with probability `power` at a
    per-seed spread `diff_std` (the inverse of seeds_needed):

        (t(1 - (1 - level) / 2, n - 1) + t(power, n - 1)) * diff_std / sqrt(n)

    None with fewer than two seeds or an unknown spread."""
    if diff_std is None or n < 2 or not math.isfinite(diff_std):
        return None
    return (t_quantile(n, level) + float(_scipy.t.ppf(power, n - 1))) * diff_std / math.sqrt(n)
