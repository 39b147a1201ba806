"""The one verdict rule: its error rate under no effect, its power under a real one, its interval."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from convcov_core import stats

TRIALS = 20_000
# With 20,000 simulated comparisons a true rate of 5% is measured within 3 standard errors, 0.46%.
MC_SLACK = 3 * math.sqrt(0.05 * 0.95 / TRIALS)


def _winner_rate(diffs: np.ndarray) -> tuple[float, float]:
    """Share of simulated comparisons (rows of diffs) in which the rule names a, and names b."""
    verdicts = [stats.paired_verdict(row, np.zeros_like(row)).winner for row in diffs]
    return verdicts.count("a") / len(verdicts), verdicts.count("b") / len(verdicts)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 10, 20])
def test_false_winner_rate_under_the_null_is_at_most_five_percent_at_every_seed_count(n):
    rng = np.random.default_rng(n)
    a, b = _winner_rate(rng.normal(0.0, 1.0, size=(TRIALS, n)))
    assert a + b <= 0.05 + MC_SLACK
    assert abs(a - b) < 2 * MC_SLACK  # symmetric: neither side is favoured


def test_the_old_mean_above_std_rule_would_fail_this_test():
    """The rule this replaced ("beat" when |mean| >= std and all seeds agree) names a winner far
    more often than 5% under the null at 3 seeds, so the simulation can tell a bad rule."""
    rng = np.random.default_rng(0)
    d = rng.normal(size=(TRIALS, 3))
    mean, std = d.mean(1), d.std(1, ddof=1)
    agree = (d > 0).all(1) | (d < 0).all(1)
    assert ((np.abs(mean) >= std) & agree).mean() > 0.15


@pytest.mark.parametrize("n, effect, power", [(5, 2.0, 0.8), (10, 1.0, 0.7), (20, 1.0, 0.95)])
def test_a_real_effect_is_found_and_credited_to_the_right_side(n, effect, power):
    rng = np.random.default_rng(7)
    a, b = _winner_rate(rng.normal(effect, 1.0, size=(2_000, n)))
    assert a >= power and b < 0.001
    a, b = _winner_rate(rng.normal(-effect, 1.0, size=(2_000, n)))
    assert b >= power and a < 0.001


def test_interval_is_the_paired_t_interval():
    a = [91.9, 92.3, 92.4, 90.7, 91.2]
    b = [90.1, 91.3, 90.8, 90.3, 90.9]
    v = stats.paired_verdict(a, b)
    d = np.subtract(a, b)
    low, high = scipy_stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=scipy_stats.sem(d))
    assert v.mean == pytest.approx(d.mean()) and v.low == pytest.approx(low) and v.high == pytest.approx(high)
    assert v.winner == "a" and v.favour_a == 5
    p = scipy_stats.ttest_rel(a, b).pvalue  # the rule is the two-sided paired t-test at 0.05
    assert (p < 0.05) == (v.winner is not None)


def test_one_seed_or_none_cannot_decide_and_says_so():
    one = stats.paired_verdict([80.0], [70.0])
    assert one.winner is None and not one.decidable and one.low is None
    assert "no verdict" in one.sentence("g", "d")
    none = stats.paired_verdict([None, 80.0], [70.0, None])
    assert none.n == 0 and none.winner is None


def test_unfinished_and_diverged_seeds_are_left_out_pairwise():
    v = stats.paired_verdict([1.0, None, float("nan"), 3.0], [0.0, 5.0, 1.0, 1.0])
    assert v.diffs == (1.0, 2.0)
    with pytest.raises(ValueError, match="one value per seed"):
        stats.paired_verdict([1.0], [1.0, 2.0])


def test_two_seeds_need_a_large_consistent_gap():
    assert stats.paired_verdict([90.0, 91.0], [80.0, 80.5]).winner == "a"
    assert stats.paired_verdict([90.0, 85.0], [80.0, 84.0]).winner is None  # 10 and 1 points


def test_sentences_name_the_winner_or_say_there_is_none():
    win = stats.paired_verdict([3.0, 4.0, 5.0], [0.0, 0.0, 0.0]).sentence("gaussian", "default")
    assert win.startswith("gaussian beat default by 4.0 points") and "3/3 favour gaussian" in win
    lose = stats.paired_verdict([0.0, 0.0, 0.0], [3.0, 4.0, 5.0]).sentence("gaussian", "default")
    assert lose.startswith("default beat gaussian by 4.0 points")
    tie = stats.paired_verdict([1.0, -1.0, 0.5], [0.0, 0.0, 0.0]).sentence("gaussian", "default")
    assert tie.startswith("gaussian vs default: no clear winner")


def test_mean_interval_and_one_sided_p_values():
    iv = stats.mean_interval([0.95, 0.96, 0.97, None])
    assert iv.n == 3 and iv.low > 0.9 and iv.p_above(0.9) < 0.025 and iv.p_below(0.9) > 0.5
    assert stats.mean_interval([]).mean is None and stats.mean_interval([2.0]).std is None


def test_holm_rejects_step_down_and_controls_the_family_under_the_null():
    assert stats.holm([0.001, 0.02, 0.04], alpha=0.05) == [True, True, True]
    assert stats.holm([0.001, 0.03, 0.04], alpha=0.05) == [True, False, False]  # 0.03 > 0.05 / 2
    assert stats.holm([None, 0.001], alpha=0.05) == [False, True]
    rng = np.random.default_rng(1)
    families = rng.uniform(size=(TRIALS, 6))  # six true null hypotheses per family
    any_rejected = np.mean([any(stats.holm(list(p), alpha=0.05)) for p in families])
    assert any_rejected <= 0.05 + MC_SLACK
