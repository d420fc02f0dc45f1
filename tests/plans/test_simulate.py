"""Dry-run: the merchants a rollout would select, from those that reported before; nothing written."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from plans.simulate import simulate
from rollouts.cohort import bucket_for
from tests.factories import UpgradeLogFactory

pytestmark = pytest.mark.django_db


def registry():
    assert apps.is_installed("merchants"), "the merchant registry app (merchants) must be installed"
    return apps.get_model("merchants", "Merchant")


def fleet(n: int, plugin_name: str = "woocommerce", profile=None, first: int = 0) -> list[uuid.UUID]:
    """n merchants that reported on the plugin before (an older version), with registry entries."""
    ids = []
    for i in range(first, first + n):
        merchant_id = uuid.UUID(int=(i + 1) * 7919 + 11)
        UpgradeLogFactory(
            merchant_id=merchant_id, plugin_name=plugin_name, from_version="3.8.0", to_version="3.9.0"
        )
        if profile:
            country, tier = profile(i)
            registry().objects.create(id=merchant_id, name=f"Shop {i}", country=country, tier=tier)
        ids.append(merchant_id)
    return ids


def test_a_random_rollout_selects_the_merchants_the_decision_endpoint_would():
    ids = fleet(400)
    UpgradeLogFactory(plugin_name="prestashop")  # another plugin's merchant is not known here
    result = simulate(plugin_name="woocommerce", version="4.0.0", percentage=Decimal("25"))
    expected = sorted(
        (bucket_for("woocommerce", "4.0.0", m), str(m))
        for m in ids
        if bucket_for("woocommerce", "4.0.0", m) < 2500
    )
    assert result["known_merchants"] == 400
    assert result["targeted_merchants"] == 400
    assert result["selected_merchants"] == len(expected)
    assert 60 < len(expected) < 140
    assert result["sample_merchant_ids"] == [m for _, m in expected[:20]]


def test_fractional_percentages_select_by_the_hundredth():
    ids = fleet(300)
    at = {
        pct: simulate(plugin_name="woocommerce", version="4.0.0", percentage=Decimal(pct))[
            "selected_merchants"
        ]
        for pct in ("0.01", "3.33", "100")
    }
    assert at["100"] == 300
    assert at["3.33"] == sum(bucket_for("woocommerce", "4.0.0", m) < 333 for m in ids)
    assert at["0.01"] == sum(bucket_for("woocommerce", "4.0.0", m) < 1 for m in ids)


def test_a_geo_rollout_counts_by_country_and_tier():
    countries = ["SN", "CI", "FR"]
    tiers = ["pro", "enterprise"]
    fleet(120, profile=lambda i: (countries[i % 3], tiers[i % 2]))
    fleet(10, profile=None, first=1000)  # reported, but unknown to the registry: never selected by geo
    result = simulate(
        plugin_name="woocommerce",
        version="4.0.0",
        percentage=Decimal("100"),
        strategy="geo",
        target_countries=["SN", "CI"],
    )
    by_country = {row["country"]: row for row in result["by_country"]}
    assert by_country["SN"] == {"country": "SN", "known": 40, "selected": 40}
    assert by_country["CI"]["selected"] == 40
    assert by_country["FR"] == {"country": "FR", "known": 40, "selected": 0}
    assert by_country["unknown"] == {"country": "unknown", "known": 10, "selected": 0}
    assert result["targeted_merchants"] == result["selected_merchants"] == 80
    assert sum(row["selected"] for row in result["by_tier"]) == 80
    assert {row["tier"] for row in result["by_tier"]} == {"pro", "enterprise", "unknown"}


def test_a_dry_run_writes_nothing():
    fleet(50)
    with CaptureQueriesContext(connection) as queries:
        simulate(plugin_name="woocommerce", version="4.0.0", percentage=Decimal("50"))
    assert queries.captured_queries
    assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in queries.captured_queries)
