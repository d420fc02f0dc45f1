"""The Sira rules as pure functions: merchant counting, error rate, Wilson lower bound."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from molam_upgrades.sira_rules import (
    MerchantCounts,
    Report,
    count_merchants,
    error_rate,
    merchant_change,
    should_pause,
    wilson_lower_bound,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def report(merchant, status, minutes=0, in_cohort=True):
    return Report(merchant, status, T0 + timedelta(minutes=minutes), in_cohort, uuid.uuid4())


def test_a_merchant_reporting_twenty_times_counts_once_by_its_latest_outcome():
    merchant = uuid.uuid4()
    reports = [report(merchant, "failed", minutes=i) for i in range(19)] + [report(merchant, "success", 30)]
    assert count_merchants(reports) == MerchantCounts(merchants=1, errors=0, upgraded=1)


def test_reports_from_outside_the_cohort_are_not_counted():
    forger = uuid.uuid4()
    reports = [report(forger, "failed", i, in_cohort=False) for i in range(10)]
    reports += [report(uuid.uuid4(), "success") for _ in range(3)]
    assert count_merchants(reports) == MerchantCounts(merchants=3, errors=0, upgraded=3)


def test_latest_outcome_wins_whatever_the_order_the_reports_arrive_in():
    merchant = uuid.uuid4()
    assert count_merchants([report(merchant, "success", 5), report(merchant, "rolled_back", 1)]).upgraded == 1
    assert count_merchants([report(merchant, "rolled_back", 5), report(merchant, "success", 1)]).errors == 1


@pytest.mark.parametrize(
    ("previous", "latest", "expected"),
    [
        (None, "success", MerchantCounts(1, 0, 1)),
        (None, "failed", MerchantCounts(1, 1, 0)),
        ("success", "rolled_back", MerchantCounts(0, 1, -1)),
        ("failed", "success", MerchantCounts(0, -1, 1)),
        ("failed", "rolled_back", MerchantCounts(0, 0, 0)),
        ("success", "success", MerchantCounts(0, 0, 0)),
    ],
)
def test_merchant_change_moves_each_count_by_at_most_one(previous, latest, expected):
    assert merchant_change(previous, latest) == expected


def test_applying_changes_report_by_report_equals_the_recount():
    """What the aggregates do on write (one change per report) agrees with the reference count."""
    merchants = [uuid.uuid4() for _ in range(7)]
    statuses = ["success", "failed", "rolled_back"]
    reports = [report(merchants[i % 7], statuses[(i * 5) % 3], minutes=i) for i in range(60)]
    latest: dict = {}
    running = MerchantCounts()
    for r in reports:
        running += merchant_change(latest.get(r.merchant_id), r.status)
        latest[r.merchant_id] = r.status
    assert running == count_merchants(reports)


def test_error_rate_is_zero_without_merchants_and_rounded_to_four_decimals():
    assert error_rate(0, 0) == Decimal("0.0000")
    assert error_rate(3, 1) == Decimal("0.3333")
    assert error_rate(10, 1) == Decimal("0.1000")


def test_wilson_lower_bound_matches_the_textbook_formula():
    # Worked by hand from Wilson (1927) at z = 1.96.
    assert wilson_lower_bound(6, 50) == pytest.approx(0.0562, abs=5e-4)
    assert wilson_lower_bound(1, 12) == pytest.approx(0.0149, abs=5e-4)
    assert wilson_lower_bound(0, 40) == 0.0
    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(10, 10) == pytest.approx(10 / (10 + 1.96**2), abs=1e-3)
    assert not math.isnan(wilson_lower_bound(50, 50))


def test_wilson_gate_does_not_pause_on_one_failure_of_twelve():
    counts = MerchantCounts(merchants=12, errors=1, upgraded=11)
    assert should_pause(counts, threshold=Decimal("0.03"), min_sample_size=10)  # raw 8.3 % > 3 %
    assert not should_pause(counts, threshold=Decimal("0.03"), min_sample_size=10, wilson_gate=True)


def test_wilson_gate_pauses_on_six_failures_of_fifty():
    counts = MerchantCounts(merchants=50, errors=6, upgraded=44)
    assert should_pause(counts, threshold=Decimal("0.03"), min_sample_size=10, wilson_gate=True)


def test_no_pause_below_the_minimum_sample_of_merchants():
    counts = MerchantCounts(merchants=9, errors=9, upgraded=0)
    assert not should_pause(counts, threshold=Decimal("0.03"), min_sample_size=10)
    assert not should_pause(MerchantCounts(), threshold=Decimal("0.03"), min_sample_size=0)


def test_the_raw_rule_pauses_strictly_above_the_threshold():
    assert not should_pause(MerchantCounts(100, 3, 97), threshold=Decimal("0.03"), min_sample_size=10)
    assert should_pause(MerchantCounts(100, 4, 96), threshold=Decimal("0.03"), min_sample_size=10)
