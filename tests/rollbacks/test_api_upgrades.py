from __future__ import annotations

import pytest

from rollbacks.models import UpgradeLog
from tests.conftest import MERCHANT_A, MERCHANT_B, assert_error

pytestmark = pytest.mark.django_db

REPORT = {
    "merchant_id": str(MERCHANT_A),
    "plugin_name": "woocommerce",
    "from_version": "3.9.0",
    "to_version": "4.0.0",
    "status": "success",
    "duration_ms": 5200,
}


def test_plugin_reports_a_successful_upgrade(cast):
    response = cast.plugin_a.post("upgrades", REPORT)
    assert response.status_code == 201
    body = response.json()
    assert body["ok"] is True
    log = UpgradeLog.objects.get(pk=body["upgrade_log"]["id"])
    assert (log.merchant_id, log.plugin_name, log.to_version, log.status) == (
        MERCHANT_A,
        "woocommerce",
        "4.0.0",
        "success",
    )
    # Seed case 1: a successful upgrade needs no rollback.
    assert body["upgrade_log"]["rollback_status"] == log.rollback_status == "not_required"
    assert log.duration_ms == 5200


def test_failed_upgrade_keeps_its_error_and_no_rollback_status(cast):
    response = cast.plugin_a.post("upgrades", {**REPORT, "status": "failed", "error": "Migration 002 failed"})
    assert response.status_code == 201
    log = UpgradeLog.objects.get()
    assert log.status == "failed" and log.error == "Migration 002 failed" and log.rollback_status is None


def test_idempotency_key_replay_returns_the_first_result_and_writes_nothing(cast):
    first = cast.plugin_a.post("upgrades", REPORT, HTTP_IDEMPOTENCY_KEY="up-1")
    second = cast.plugin_a.post("upgrades", REPORT, HTTP_IDEMPOTENCY_KEY="up-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert UpgradeLog.objects.count() == 1


def test_idempotency_key_reused_with_another_body_is_a_conflict(cast):
    cast.plugin_a.post("upgrades", REPORT, HTTP_IDEMPOTENCY_KEY="up-2")
    response = cast.plugin_a.post("upgrades", {**REPORT, "status": "failed"}, HTTP_IDEMPOTENCY_KEY="up-2")
    assert_error(response, 409)
    assert UpgradeLog.objects.count() == 1


def test_idempotency_keys_are_per_credential(cast):
    cast.plugin_a.post("upgrades", REPORT, HTTP_IDEMPOTENCY_KEY="shared")
    cast.ops.post("upgrades", REPORT, HTTP_IDEMPOTENCY_KEY="shared")
    assert UpgradeLog.objects.count() == 2


def test_plugin_cannot_report_for_another_merchant(cast):
    response = cast.plugin_b.post("upgrades", REPORT)
    assert_error(response, 403)
    assert not UpgradeLog.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("merchant_id", "not-a-uuid"),
        ("merchant_id", 42),
        ("plugin_name", "WooCommerce"),
        ("plugin_name", "../etc"),
        ("from_version", "latest"),
        ("to_version", "4.0.0" + "1" * 70),
        ("status", "exploded"),
        ("duration_ms", -1),
        ("duration_ms", "12"),
        ("duration_ms", 1.5),
        ("error", 42),
    ],
)
def test_bad_fields_are_rejected_with_a_readable_error(cast, field, value):
    response = cast.plugin_a.post("upgrades", {**REPORT, field: value})
    body = assert_error(response, 400)
    assert field in body["details"]
    assert field in body["error"]
    assert not UpgradeLog.objects.exists()


def test_missing_fields_are_listed(cast):
    body = assert_error(cast.ops.post("upgrades", {}), 400)
    assert {"merchant_id", "plugin_name", "from_version", "to_version", "status"} <= set(body["details"])


def test_body_must_be_an_object(cast):
    assert_error(cast.ops.post("upgrades", "[1, 2]"), 400)
    assert_error(cast.ops.post("upgrades", '"text"'), 400)


def test_ops_may_report_for_any_merchant(cast):
    response = cast.ops.post("upgrades", {**REPORT, "merchant_id": str(MERCHANT_B)})
    assert response.status_code == 201
