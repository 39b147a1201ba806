"""Verdict rules for the claims (RULES): each part of a claim is a one-sided test on the Student-t
interval of its per-seed values (stats.mean_interval); settle() combines a claim's parts, refuting
with Holm's correction (stats.holm)."""

from __future__ import annotations

from .. import stats

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)

RULES = {
    "interval": ("Per seed, d = A - B (paired: same seed, same data order). Every test reads the 95% "
                 "Student-t interval of the mean of d over the n seeds, mean ± t(0.975, n - 1) SE "
                 "(stats.mean_interval): the paired t-test, the same rule the Training Lab and "
                 "`compare` use (stats.paired_verdict). Fewer than two seeds: inconclusive."),
    "superiority": ("A beats B: supported when the interval lies above 0; refuted when it lies below 0 "
                    "(B clearly better)."),
    "non-inferiority": ("A does about as well as B or better, within a margin m: supported when the "
                        "interval lies above -m; refuted when it lies below -m."),
    "equivalence": ("A roughly matches B, within a margin m: supported when the interval lies inside "
                    "(-m, m); refuted when it lies entirely outside."),
    "above": ("A value (per layer, over seeds) exceeds a threshold t: supported when its interval lies "
              "above t; refuted when it lies below t."),
    "some cases": ("A claim that holds 'in some cases' (claim 2) is tested in each case (the main setting and "
                   "every cell of the effect map): supported when at least one case is supported after Holm's "
                   "correction over all of them (one-sided p-values at family-wise level 0.025); not supported "
                   "when every case is refuted; otherwise inconclusive."),
    "combined": ("A claim is supported when every part is supported: an intersection-union test, no "
                 "more often wrong than its parts, so it needs no correction. It is refuted (not "
                 "supported) when any part is refuted after Holm's correction over the claim's parts "
                 "(one-sided p-values at family-wise level 0.025). Otherwise it is inconclusive."),
}


ALPHA = 0.025  # one-sided, family-wise: the level of every refutation and of settle_some's support


def _part(test: str, statement: str, values: dict, support: bool, p_refute: float | None,
          p_support: float | None, **extra) -> dict:
    """One test of a claim: its values per seed, their interval, whether it supports the claim,
    and the one-sided p-values of the claim's direction (settle_some) and of the opposite (settle
    turns that into a refutation)."""
    iv = stats.mean_interval(values.values())
    return {"test": test, "statement": statement, "per_seed": {str(k): v for k, v in values.items()},
            "n": iv.n, "mean": iv.mean, "std": iv.std, "se": iv.se, "low": iv.low, "high": iv.high,
            "supports": bool(support and iv.low is not None), "p_refute": p_refute, "p_support": p_support,
            "verdict": INCONCLUSIVE, **extra}


def superiority(diffs: dict, a: str, b: str, statement: str | None = None) -> dict:
    """Part "A beats B" from per-seed differences A - B (see RULES["superiority"])."""
    iv = stats.mean_interval(diffs.values())
    return _part("superiority", statement or f"{a} beats {b}", diffs, iv.low is not None and iv.low > 0,
                 iv.p_below(0.0), iv.p_above(0.0), a=a, b=b, margin=0.0,
                 favour_a=sum(d > 0 for d in diffs.values() if d is not None))


def non_inferiority(diffs: dict, a: str, b: str, margin: float) -> dict:
    """Part "A does about as well as B or better" within `margin` (see RULES["non-inferiority"])."""
    iv = stats.mean_interval(diffs.values())
    return _part("non-inferiority", f"{a} does about as well as {b} or better (margin {margin:g})", diffs,
                 iv.low is not None and iv.low > -margin, iv.p_below(-margin), iv.p_above(-margin), a=a, b=b,
                 margin=margin,
                 favour_a=sum(d > 0 for d in diffs.values() if d is not None))


def equivalence(diffs: dict, a: str, b: str, margin: float) -> dict:
    """Part "A roughly matches B" within `margin` (see RULES["equivalence"])."""
    iv = stats.mean_interval(diffs.values())
    inside = iv.low is not None and -margin < iv.low and iv.high < margin
    p_out = None if iv.se is None else min(1.0, 2 * min(iv.p_above(margin), iv.p_below(-margin)))
    p_in = None if iv.se is None else max(iv.p_above(-margin), iv.p_below(margin))  # two one-sided tests
    return _part("equivalence", f"{a} roughly matches {b} (margin {margin:g})", diffs, inside, p_out, p_in,
                 a=a, b=b, margin=margin, favour_a=sum(d > 0 for d in diffs.values() if d is not None))


def above(values: dict, threshold: float, statement: str) -> dict:
    """Part "the value exceeds threshold" from its values per seed (see RULES["above"])."""
    iv = stats.mean_interval(values.values())
    return _part("above", statement, values, iv.low is not None and iv.low > threshold,
                 iv.p_below(threshold), iv.p_above(threshold), threshold=threshold)


def settle(parts: list[dict]) -> str:
    """Set each part's verdict and return the claim's (see RULES["combined"])."""
    refuted = stats.holm([p["p_refute"] for p in parts], ALPHA)
    for part, out in zip(parts, refuted):
        part["verdict"] = NOT_SUPPORTED if out else SUPPORTED if part["supports"] else INCONCLUSIVE
    if not parts:
        return INCONCLUSIVE
    if any(refuted):
        return NOT_SUPPORTED
    return SUPPORTED if all(p["supports"] for p in parts) else INCONCLUSIVE


def settle_some(parts: list[dict]) -> str:
    """Set each part's verdict and return the verdict of "the claim holds in some of these cases"
    (see RULES["some cases"]): a part is supported when Holm's correction over all parts keeps its
    p_support, refuted when its own p_refute is under ALPHA (every part must be, to refute)."""
    supported = stats.holm([p["p_support"] for p in parts], ALPHA)
    refuted = [p["p_refute"] is not None and p["p_refute"] < ALPHA for p in parts]
    for part, up, down in zip(parts, supported, refuted):
        part["verdict"] = SUPPORTED if up else NOT_SUPPORTED if down else INCONCLUSIVE
    if any(supported):
        return SUPPORTED
    return NOT_SUPPORTED if parts and all(refuted) else INCONCLUSIVE


def unrefuted_below(parts: list[dict]) -> str | None:
    """Where some parts' own intervals lie wholly on the refuting side (p_refute < ALPHA) but the
    claim's correction keeps them from refuting it: a sentence saying so; None otherwise."""
    below = [p for p in parts if p["p_refute"] is not None and p["p_refute"] < ALPHA and p["verdict"] != NOT_SUPPORTED]
    if not below:
        return None
    return (f"{len(below)} of {len(parts)} tests have intervals wholly against the claim on their own "
            f"({'; '.join(p['statement'] for p in below[:3])}{'; ...' if len(below) > 3 else ''}), but after "
            f"Holm's correction over the claim's {len(parts)} tests none of them refutes it: the verdict stays "
            f"'{INCONCLUSIVE}' by the stated rule, not because the numbers are unclear.")
