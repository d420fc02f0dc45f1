"""Bucketing: deterministic, sticky, monotonic, a fresh cohort per version."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal

import pytest

from molam_upgrades.versions import Version
from rollouts.cohort import bucket_for, format_percentage, selected


def test_bucket_is_the_spec_formula():
    merchant = uuid.UUID("123E4567-E89B-12D3-A456-426614174000")
    expected = (
        int(hashlib.sha256(b"woocommerce:4.0.0:123e4567-e89b-12d3-a456-426614174000").hexdigest()[:8], 16)
        % 10000
    )
    assert bucket_for("woocommerce", "4.0.0", merchant) == expected
    assert bucket_for("woocommerce", "4.0.0", str(merchant).upper()) == expected


def test_raising_the_percentage_keeps_every_selected_merchant():
    merchants = [uuid.uuid4() for _ in range(2000)]
    previous: set = set()
    for pct in (Decimal("0.5"), Decimal("5"), Decimal("25"), Decimal("50"), Decimal("100")):
        chosen = {m for m in merchants if selected(bucket_for("woocommerce", "4.0.0", m), pct)}
        assert previous <= chosen
        previous = chosen
    assert len(previous) == len(merchants)


def test_each_version_gets_a_fresh_cohort():
    merchants = [uuid.uuid4() for _ in range(4000)]
    a = {m for m in merchants if selected(bucket_for("woocommerce", "4.0.0", m), Decimal("10"))}
    b = {m for m in merchants if selected(bucket_for("woocommerce", "4.1.0", m), Decimal("10"))}
    # Independent 10 % samples overlap on about 1 % of the fleet, not 10 %.
    assert len(a & b) < 0.03 * len(merchants)


def test_zero_percent_selects_nobody_and_hundred_selects_everybody():
    for _ in range(500):
        bucket = bucket_for("p", "1.0.0", uuid.uuid4())
        assert not selected(bucket, Decimal("0"))
        assert selected(bucket, Decimal("100"))


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("3.9.0", "3.10.0"),
        ("1.8.0-rc.1", "1.8.0"),
        ("1.8.0-rc.1", "1.8.0-rc.2"),
        ("1.8.0-alpha", "1.8.0-beta"),
        ("2", "2.0.1"),
        ("0.9.9", "1.0.0"),
    ],
)
def test_versions_compare_as_versions(low, high):
    assert Version(low) < Version(high)


def test_equal_versions():
    assert Version("4.0") == Version("4.0.0")
    assert Version("4.0.0+build.7") == Version("4.0.0")


def test_percentage_formatting():
    assert format_percentage(Decimal("25.00")) == "25"
    assert format_percentage(Decimal("0.50")) == "0.5"
