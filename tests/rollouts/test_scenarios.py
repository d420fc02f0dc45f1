"""The seed's three 115ter scenarios."""

from __future__ import annotations

import random
import uuid

import pytest

from molam_upgrades.models import Alert, AuditEntry
from rollbacks.models import RollbackHistory
from rollouts.models import Rollout
from tests.factories import ReleaseFactory, UpgradeLogFactory, cohort_merchant

pytestmark = pytest.mark.django_db


def _decide(api, plugin, merchant, **params):
    return api.get(f"rollouts/{plugin}/should-upgrade", {"merchant_id": str(merchant), **params}).json()


def test_scenario_1_random_ten_percent_of_ten_thousand_merchants(cast):
    from rollouts.cohort import decide

    cast.ops.post(
        "rollouts", {"plugin_name": "woocommerce", "version": "4.0.0", "percentage": 10, "strategy": "random"}
    )
    ReleaseFactory(plugin_name="woocommerce", version="4.0.0")
    rng = random.Random(115)
    merchants = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(10_000)]
    chosen = sum(
        decide(plugin_name="woocommerce", merchant_id=m, current_version="3.9.0", country=None, tier=None)[
            "should_upgrade"
        ]
        for m in merchants
    )
    assert 900 <= chosen <= 1100  # 10 % ± 1 %
    # and through HTTP, a sample agrees with the function
    for m in merchants[:50]:
        expected = decide(
            plugin_name="woocommerce", merchant_id=m, current_version=None, country=None, tier=None
        )
        assert _decide(cast.viewer, "woocommerce", m)["should_upgrade"] == expected["should_upgrade"]


def test_scenario_2_geo_fifty_percent_us_fr_never_cn(cast):
    response = cast.ops.post(
        "rollouts",
        {
            "plugin_name": "prestashop",
            "version": "1.8.0",
            "percentage": 50,
            "strategy": "geo",
            "target_countries": ["US", "FR"],
        },
    )
    assert response.status_code == 201
    ReleaseFactory(plugin_name="prestashop", version="1.8.0")
    merchants = [uuid.uuid4() for _ in range(400)]
    us = sum(_decide(cast.viewer, "prestashop", m, country="US")["should_upgrade"] for m in merchants)
    cn = sum(_decide(cast.viewer, "prestashop", m, country="CN")["should_upgrade"] for m in merchants)
    assert 140 <= us <= 260  # ~50 %
    assert cn == 0


def test_scenario_3_sira_pauses_after_fifty_upgrades_with_five_failures(
    cast, django_capture_on_commit_callbacks
):
    rollout_id = cast.ops.post(
        "rollouts", {"plugin_name": "shopify", "version": "2.5.0", "percentage": 20, "error_threshold": 0.03}
    ).json()["rollout"]["id"]
    for i in range(50):
        cast.ops.post(
            "upgrades",
            {
                "merchant_id": str(cohort_merchant("shopify", "2.5.0")),  # merchants the rollout selected
                "plugin_name": "shopify",
                "from_version": "2.4.0",
                "to_version": "2.5.0",
                "status": "failed" if i < 5 else "success",
            },
        )
    with django_capture_on_commit_callbacks(execute=True):
        response = cast.sira.post("rollouts/auto-check")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["paused_count"] == 1
    paused = body["paused_rollouts"][0]
    assert (paused["rollout_id"], paused["plugin_name"], paused["error_rate"], paused["threshold"]) == (
        rollout_id,
        "shopify",
        0.1,
        0.03,
    )
    rollout = Rollout.objects.get(pk=rollout_id)
    assert rollout.status == "paused" and rollout.auto_paused is True and rollout.paused_by == "client:sira"
    history = RollbackHistory.objects.get(sira_triggered=True)
    assert history.rollout_id == rollout_id and float(history.error_rate_detected) == 0.1
    assert AuditEntry.objects.filter(action="rollout.auto_paused", object_id=str(rollout_id)).count() == 1
    assert Alert.objects.get(kind="rollout_auto_paused").status == "not_configured"
    # The rollout page shows it, the decision endpoint stops upgrades.
    assert cast.viewer.get("rollouts/shopify").json()["rollout"]["auto_paused"] is True
    assert "paused" in _decide(cast.viewer, "shopify", uuid.uuid4())["reason"]
    # Idempotent: a second run pauses nothing new.
    again = cast.sira.post("rollouts/auto-check").json()
    assert again["paused_count"] == 0
    assert RollbackHistory.objects.filter(sira_triggered=True).count() == 1


def test_scenario_3_no_pause_on_a_tiny_sample(cast):
    cast.ops.post(
        "rollouts", {"plugin_name": "shopify", "version": "2.5.0", "percentage": 20, "error_threshold": 0.03}
    )
    for status in ["failed", "failed", "success"]:
        UpgradeLogFactory(plugin_name="shopify", to_version="2.5.0", status=status)
    assert cast.sira.post("rollouts/auto-check").json()["paused_count"] == 0
    assert Rollout.objects.get().status == "active"


def test_reports_before_the_rollout_started_do_not_count(cast):
    from datetime import timedelta

    from django.utils import timezone

    for _ in range(20):
        UpgradeLogFactory(
            plugin_name="shopify",
            to_version="2.5.0",
            status="failed",
            created_at=timezone.now() - timedelta(days=1),
        )
    cast.ops.post("rollouts", {"plugin_name": "shopify", "version": "2.5.0", "percentage": 20})
    assert cast.sira.post("rollouts/auto-check").json()["paused_count"] == 0


def test_unmonitored_rollouts_are_not_paused(cast):
    cast.ops.post(
        "rollouts", {"plugin_name": "shopify", "version": "2.5.0", "percentage": 20, "sira_monitoring": False}
    )
    for _ in range(20):
        UpgradeLogFactory(plugin_name="shopify", to_version="2.5.0", status="failed")
    assert cast.sira.post("rollouts/auto-check").json()["paused_count"] == 0
