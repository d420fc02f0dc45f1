"""Sira counts merchants, not requests: one credential cannot pause a rollout, nor keep one running."""

from __future__ import annotations

import uuid

import pytest

from rollouts.cohort import bucket_for
from rollouts.models import Rollout
from tests.conftest import make_api
from tests.factories import cohort_merchant

pytestmark = pytest.mark.django_db


def outside_merchant(plugin_name: str, version: str, percentage: float) -> uuid.UUID:
    """A merchant the rollout did not select (its bucket is above the percentage)."""
    while True:
        merchant = uuid.uuid4()
        if bucket_for(plugin_name, version, merchant) >= percentage * 100:
            return merchant


def report(api, merchant_id, status, plugin_name="woocommerce", version="4.0.0"):
    response = api.post(
        "upgrades",
        {
            "merchant_id": str(merchant_id),
            "plugin_name": plugin_name,
            "from_version": "3.9.0",
            "to_version": version,
            "status": status,
        },
    )
    assert response.status_code == 201, response.content
    return response


def start_rollout(cast, **extra) -> int:
    body = {
        "plugin_name": "woocommerce",
        "version": "4.0.0",
        "percentage": 5,
        "error_threshold": 0.03,
        **extra,
    }
    response = cast.ops.post("rollouts", body)
    assert response.status_code == 201, response.content
    return response.json()["rollout"]["id"]


def test_forged_failures_from_an_unselected_merchant_leave_the_rollout_active_and_a_real_cohort_still_pauses_it(
    cast,
):
    rollout_id = start_rollout(cast)
    forger_id = outside_merchant("woocommerce", "4.0.0", 5)
    forger = make_api("forger", "plugin", forger_id)
    for _ in range(10):
        report(forger, forger_id, "failed")

    check = cast.sira.post("rollouts/auto-check").json()
    assert check["paused_count"] == 0
    rollout = cast.viewer.get("rollouts/woocommerce").json()["rollout"]
    assert rollout["status"] == "active"
    # Stored and shown, never counted.
    assert (rollout["reports_outside_cohort"], rollout["merchants_reporting"], rollout["error_rate"]) == (
        10,
        0,
        0,
    )

    # The forger now floods successes to hide a real failure: the cohort failing at 10 % still pauses.
    for _ in range(100):
        report(forger, forger_id, "success")
    for i in range(50):
        report(cast.ops, cohort_merchant("woocommerce", "4.0.0"), "failed" if i < 5 else "success")
    check = cast.sira.post("rollouts/auto-check").json()
    assert check["paused_count"] == 1
    paused = check["paused_rollouts"][0]
    assert (
        paused["rollout_id"],
        paused["error_rate"],
        paused["merchants_reporting"],
        paused["merchants_failed"],
    ) == (
        rollout_id,
        0.1,
        50,
        5,
    )
    assert Rollout.objects.get(pk=rollout_id).status == "paused"
    assert "(5/50 merchants failed or rolled back)" in Rollout.objects.get(pk=rollout_id).paused_reason


def test_a_merchant_reporting_twenty_times_counts_once(cast):
    start_rollout(cast, percentage=100)
    merchant = cohort_merchant("woocommerce", "4.0.0")
    for _ in range(20):
        report(cast.ops, merchant, "failed")
    rollout = cast.viewer.get("rollouts/woocommerce").json()["rollout"]
    assert (rollout["merchants_reporting"], rollout["merchants_failed"], rollout["upgrades_total"]) == (
        1,
        1,
        20,
    )
    # One merchant is below the minimum sample of 10: nothing to judge yet.
    assert cast.sira.post("rollouts/auto-check").json()["paused_count"] == 0
    # Its latest outcome is what counts: it recovered.
    report(cast.ops, merchant, "success")
    rollout = cast.viewer.get("rollouts/woocommerce").json()["rollout"]
    assert (rollout["merchants_reporting"], rollout["merchants_failed"], rollout["merchants_upgraded"]) == (
        1,
        0,
        1,
    )


def test_reports_for_a_version_without_an_open_rollout_count_nowhere(cast):
    rollout_id = start_rollout(cast, percentage=100)
    for _ in range(12):
        report(cast.ops, uuid.uuid4(), "failed", version="3.9.5")
    rollout = cast.viewer.get("rollouts/woocommerce").json()["rollout"]
    assert (rollout["id"], rollout["upgrades_total"], rollout["reports_outside_cohort"]) == (rollout_id, 0, 0)


def test_wilson_gate_does_not_pause_on_one_failure_of_twelve_but_pauses_on_six_of_fifty(cast):
    for plugin_name, merchants, failures in (("small", 12, 1), ("large", 50, 6)):
        response = cast.ops.post(
            "rollouts",
            {"plugin_name": plugin_name, "version": "2.0.0", "percentage": 50, "wilson_gate": True},
        )
        assert response.status_code == 201 and response.json()["rollout"]["wilson_gate"] is True
        for i in range(merchants):
            report(
                cast.ops,
                cohort_merchant(plugin_name, "2.0.0"),
                "failed" if i < failures else "success",
                plugin_name=plugin_name,
                version="2.0.0",
            )
    small = cast.viewer.get("rollouts/small").json()["rollout"]
    assert small["error_rate"] == 0.0833 and small["error_rate_lower_bound"] == pytest.approx(
        0.0149, abs=1e-4
    )
    assert small["error_rate_above_threshold"] is False  # judged on the lower bound

    check = cast.sira.post("rollouts/auto-check").json()
    assert [p["plugin_name"] for p in check["paused_rollouts"]] == ["large"]
    assert Rollout.objects.get(plugin_name="small").status == "active"
    large = Rollout.objects.get(plugin_name="large")
    assert large.status == "paused" and "95 % lower bound 0.0562" in large.paused_reason


def test_wilson_gate_is_refused_unless_a_boolean(cast):
    response = cast.ops.post(
        "rollouts", {"plugin_name": "w", "version": "1.0.0", "percentage": 5, "wilson_gate": "yes"}
    )
    assert response.status_code == 400 and "wilson_gate" in response.json()["details"]
    assert not Rollout.objects.filter(plugin_name="w").exists()
