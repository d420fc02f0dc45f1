"""The judge on its own: figures checked by hand, margins, minimum samples."""

from __future__ import annotations

import math

from scipy import stats as scipy_stats

from payments import stats

JUDGE = stats.Settings(
    alpha=0.01, success_margin=0.01, latency_margin=0.10, min_merchants=10, min_payments=500
)


def success(cs, ca, bs, ba, cm=30, bm=60, judge=JUDGE):
    return stats.success_rate_test(
        canary_succeeded=cs,
        canary_attempted=ca,
        baseline_succeeded=bs,
        baseline_attempted=ba,
        canary_merchants=cm,
        baseline_merchants=bm,
        settings=judge,
    )


def test_a_five_point_drop_fails_with_the_z_statistic_computed_by_hand():
    result = success(930, 1000, 1960, 2000)
    pc, pb = 0.93, 0.98
    se = math.sqrt(pc * (1 - pc) / 1000 + pb * (1 - pb) / 2000)
    assert result.verdict == stats.FAIL
    assert result.z == pytest_approx((pb - pc - 0.01) / se)
    assert result.p_value == pytest_approx(scipy_stats.norm.sf((pb - pc - 0.01) / se))
    assert result.difference == pytest_approx(-0.05)
    assert "93.00%" in result.reason and "98.00%" in result.reason and "z = " in result.reason


def test_with_no_margin_the_pooled_two_proportion_test_is_used():
    judge = stats.Settings(success_margin=0.0, min_merchants=1, min_payments=1)
    result = success(930, 1000, 1960, 2000, judge=judge)
    pooled = (930 + 1960) / 3000
    se = math.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 2000))
    assert result.z == pytest_approx((0.98 - 0.93) / se)


def test_a_drop_smaller_than_the_margin_passes_however_large_the_sample():
    result = success(975_000, 1_000_000, 980_000, 1_000_000)
    assert result.verdict == stats.PASS
    assert result.p_value > 0.5


def test_a_better_canary_passes():
    assert success(995, 1000, 1960, 2000).verdict == stats.PASS


def test_too_few_merchants_or_payments_is_inconclusive_whatever_the_rates():
    few_merchants = success(50, 100, 1960, 2000, cm=3)
    assert few_merchants.verdict == stats.INCONCLUSIVE
    assert "3 canary" in few_merchants.reason and "10 needed" in few_merchants.reason
    few_payments = success(300, 400, 1960, 2000)
    assert few_payments.verdict == stats.INCONCLUSIVE
    assert few_payments.z is None and few_payments.p_value is None


def test_rates_of_exactly_one_have_no_noise_and_do_not_divide_by_zero():
    result = success(1000, 1000, 2000, 2000)
    assert result.verdict == stats.PASS and result.p_value == 1.0


def test_latency_uses_mann_whitney_against_the_baseline_inflated_by_the_margin():
    canary = [1000 + 10 * i for i in range(12)]
    baseline = [700 + 10 * i for i in range(20)]
    result = stats.latency_test(canary, baseline, settings=JUDGE)
    expected = scipy_stats.mannwhitneyu(canary, [b * 1.1 for b in baseline], alternative="greater")
    assert result.verdict == stats.FAIL
    assert result.u == expected.statistic and result.p_value == pytest_approx(expected.pvalue)
    assert result.rank_biserial == pytest_approx(2 * expected.statistic / (12 * 20) - 1)
    assert result.canary_p95_median == 1055 and result.baseline_p95_median == 795


def test_latency_within_the_margin_passes():
    canary = [820 + 10 * i for i in range(12)]  # ~5 % slower: under the 10 % margin
    baseline = [780 + 10 * i for i in range(12)]
    assert stats.latency_test(canary, baseline, settings=JUDGE).verdict == stats.PASS


def test_latency_with_too_few_merchants_is_inconclusive():
    result = stats.latency_test([5000.0] * 4, [500.0] * 40, settings=JUDGE)
    assert result.verdict == stats.INCONCLUSIVE and result.u is None


def test_verdicts_combine_fail_first_then_inconclusive():
    assert stats.combine(stats.PASS, stats.FAIL) == stats.FAIL
    assert stats.combine(stats.INCONCLUSIVE, stats.FAIL) == stats.FAIL
    assert stats.combine(stats.PASS, stats.INCONCLUSIVE) == stats.INCONCLUSIVE
    assert stats.combine(stats.PASS, stats.PASS) == stats.PASS


def pytest_approx(value):
    import pytest

    return pytest.approx(value, rel=1e-9)
