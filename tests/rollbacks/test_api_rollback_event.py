from __future__ import annotations

import pytest

from rollbacks.models import UpgradeLog
from tests.conftest import MERCHANT_A, assert_error
from tests.factories import UpgradeLogFactory

pytestmark = pytest.mark.django_db

EVENT = {
    "merchant_id": str(MERCHANT_A),
    "plugin_name": "woocommerce",
    "rollback_version": "3.9.0",
    "status": "success",
    "reason": "Migration failed",
}


def test_rollback_event_updates_the_latest_upgrade_log(cast):
    UpgradeLogFactory(merchant_id=MERCHANT_A, status="success", to_version="3.9.0")
    latest = UpgradeLogFactory(merchant_id=MERCHANT_A, status="failed", to_version="4.0.0")
    other_plugin = UpgradeLogFactory(merchant_id=MERCHANT_A, plugin_name="prestashop", status="failed")

    response = cast.plugin_a.post("rollback", EVENT)

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["upgrade_log"]["id"] == str(latest.id)
    assert body["upgrade_log"]["rollback_status"] == "success"
    assert body["upgrade_log"]["rollback_version"] == "3.9.0"
    latest.refresh_from_db()
    assert latest.rollback_reason == "Migration failed" and latest.rollback_triggered_at is not None
    other_plugin.refresh_from_db()
    assert other_plugin.rollback_status is None
    assert UpgradeLog.objects.count() == 3


def test_rollback_event_without_upgrade_log_creates_a_failed_one(cast):
    response = cast.plugin_a.post("rollback", {**EVENT, "status": "failed"})
    assert response.status_code == 200
    log = UpgradeLog.objects.get()
    assert log.status == "failed" and log.rollback_status == "failed" and log.rollback_version == "3.9.0"


def test_rollback_event_for_another_merchant_is_refused(cast):
    assert_error(cast.plugin_b.post("rollback", EVENT), 403)
    assert not UpgradeLog.objects.exists()


def test_rollback_event_status_must_be_success_or_failed(cast):
    body = assert_error(cast.plugin_a.post("rollback", {**EVENT, "status": "not_required"}), 400)
    assert "status" in body["details"]
