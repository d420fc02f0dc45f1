from __future__ import annotations

import uuid

import pytest

from rollouts.cohort import bucket_for
from tests.conftest import MERCHANT_A, MERCHANT_B, assert_error
from tests.factories import ReleaseFactory, RolloutFactory

pytestmark = pytest.mark.django_db

KEYS = {
    "should_upgrade",
    "reason",
    "rollout_id",
    "rollout_percentage",
    "rollout_strategy",
    "version",
    "bucket",
    "release",
}


def ask(api, plugin="woocommerce", **params):
    params.setdefault("merchant_id", str(api.merchant_id or MERCHANT_A))
    response = api.get(f"rollouts/{plugin}/should-upgrade", params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == KEYS
    return body


def test_no_active_rollout(cast):
    body = ask(cast.plugin_a)
    assert body["should_upgrade"] is False and body["rollout_id"] is None
    assert "No active rollout" in body["reason"]


def test_selected_merchant_gets_the_release(cast):
    rollout = RolloutFactory(plugin_name="woocommerce", rollout_percentage=100, rollout_strategy="random")
    release = ReleaseFactory(plugin_name="woocommerce", version="4.0.0", signature="")
    body = ask(cast.plugin_a, current_version="3.9.0")
    assert body["should_upgrade"] is True
    assert body["reason"] == "Merchant selected for 100% rollout (random strategy)"
    assert (
        body["rollout_id"] == rollout.pk and body["version"] == "4.0.0" and body["rollout_percentage"] == 100
    )
    assert body["bucket"] == bucket_for("woocommerce", "4.0.0", MERCHANT_A)
    assert body["release"] == {
        "download_url": release.download_url,
        "sha256": release.sha256,
        "signature": None,
    }


def test_selected_but_release_not_registered_is_not_an_upgrade(cast):
    RolloutFactory(plugin_name="woocommerce", rollout_percentage=100)
    body = ask(cast.plugin_a)
    assert body["should_upgrade"] is False and body["release"] is None
    assert "not registered" in body["reason"]


def test_paused_rollout(cast):
    RolloutFactory(plugin_name="woocommerce", rollout_percentage=100, status="paused")
    ReleaseFactory()
    body = ask(cast.plugin_a)
    assert body["should_upgrade"] is False and "paused" in body["reason"]


@pytest.mark.parametrize("current", ["4.0.0", "4.0", "4.0.1", "10.0.0"])
def test_already_on_that_version_or_newer(cast, current):
    RolloutFactory(plugin_name="woocommerce", version="4.0.0", rollout_percentage=100)
    ReleaseFactory()
    body = ask(cast.plugin_a, current_version=current)
    assert body["should_upgrade"] is False and "or newer" in body["reason"]


def test_versions_are_compared_as_versions(cast):
    RolloutFactory(plugin_name="woocommerce", version="3.10.0", rollout_percentage=100)
    ReleaseFactory(version="3.10.0")
    assert ask(cast.plugin_a, current_version="3.9.0")["should_upgrade"] is True


def test_outside_the_percentage(cast):
    bucket = bucket_for("woocommerce", "4.0.0", MERCHANT_A)
    RolloutFactory(plugin_name="woocommerce", rollout_percentage=bucket / 100)  # bucket == pct*100 → excluded
    ReleaseFactory()
    body = ask(cast.plugin_a)
    assert body["should_upgrade"] is False and f"bucket {bucket}" in body["reason"]


def test_geo_targeting(cast):
    RolloutFactory(
        plugin_name="woocommerce",
        rollout_strategy="geo",
        target_countries=["FR", "US"],
        rollout_percentage=100,
    )
    ReleaseFactory()
    assert ask(cast.plugin_a, country="US")["should_upgrade"] is True
    assert ask(cast.plugin_a, country="fr")["should_upgrade"] is True
    cn = ask(cast.plugin_a, country="CN")
    assert cn["should_upgrade"] is False and "not targeted" in cn["reason"]
    assert ask(cast.plugin_a)["should_upgrade"] is False


def test_tier_targeting(cast):
    RolloutFactory(
        plugin_name="woocommerce",
        rollout_strategy="merchant_tier",
        target_tiers=["enterprise", "pro"],
        rollout_percentage=100,
    )
    ReleaseFactory()
    body = ask(cast.plugin_a, tier="pro")
    assert (
        body["should_upgrade"] is True
        and body["reason"] == "Merchant selected for 100% rollout (merchant_tier strategy)"
    )
    assert ask(cast.plugin_a, tier="starter")["should_upgrade"] is False


def test_plugin_may_only_ask_for_its_own_merchant(cast):
    assert_error(
        cast.plugin_b.get("rollouts/woocommerce/should-upgrade", {"merchant_id": str(MERCHANT_A)}), 403
    )
    assert ask(cast.viewer, merchant_id=str(MERCHANT_B))["should_upgrade"] is False
    assert_error(cast.sira.get("rollouts/woocommerce/should-upgrade", {"merchant_id": str(MERCHANT_A)}), 403)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"merchant_id": "x"},
        {"merchant_id": str(MERCHANT_A), "current_version": "latest"},
        {"merchant_id": str(MERCHANT_A), "country": "USA"},
    ],
)
def test_bad_queries(cast, params):
    assert_error(cast.ops.get("rollouts/woocommerce/should-upgrade", params), 400)


def test_decision_reflects_changes_immediately(cast, django_capture_on_commit_callbacks):
    rollout = RolloutFactory(plugin_name="woocommerce", rollout_percentage=100)
    ReleaseFactory()
    assert ask(cast.plugin_a)["should_upgrade"] is True
    with django_capture_on_commit_callbacks(execute=True):
        cast.ops.post(f"rollouts/{rollout.pk}/pause", {"reason": "investigating"})
    assert "paused" in ask(cast.plugin_a)["reason"]


def test_hot_path_is_constant_queries(cast, django_assert_max_num_queries):
    RolloutFactory(plugin_name="woocommerce", rollout_percentage=50)
    ReleaseFactory()
    ask(cast.viewer, merchant_id=str(uuid.uuid4()))  # warm the token and rollout caches
    with django_assert_max_num_queries(0):
        for _ in range(20):
            ask(cast.viewer, merchant_id=str(uuid.uuid4()))
