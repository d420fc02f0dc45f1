from __future__ import annotations

import uuid

import pytest

from molam_upgrades.models import Alert, AuditEntry
from rollbacks.models import RollbackHistory, UpgradeLog
from tests.conftest import MERCHANT_A, MERCHANT_B, assert_error
from tests.factories import PendingRollbackFactory, UpgradeLogFactory

pytestmark = pytest.mark.django_db

INITIATE = {
    "merchant_id": str(MERCHANT_A),
    "plugin_name": "woocommerce",
    "from_version": "4.0.0",
    "to_version": "3.9.0",
    "trigger": "automatic",
    "reason": "Upgrade verification failed",
}
COMPLETE = {"success": True, "duration_ms": 1500, "files_restored": 125, "db_restored": True}


def test_agent_initiates_and_completes_an_automatic_rollback(cast):
    UpgradeLogFactory(merchant_id=MERCHANT_A, status="rolled_back")
    response = cast.plugin_a.post("rollback/initiate", INITIATE)
    assert response.status_code == 201
    rollback_id = response.json()["rollback_id"]
    uuid.UUID(rollback_id)
    rollback = RollbackHistory.objects.get(pk=rollback_id)
    assert rollback.success is None and rollback.completed_at is None
    assert rollback.rollback_reason == "Upgrade verification failed"
    assert rollback.initiated_by == "client:plugin-a"

    done = cast.plugin_a.post(f"rollback/{rollback_id}/complete", COMPLETE)

    assert done.status_code == 200
    data = done.json()["rollback"]
    assert data["success"] is True and data["files_restored"] == 125 and data["db_restored"] is True
    rollback.refresh_from_db()
    assert rollback.completed_at is not None and rollback.duration_ms == 1500
    assert UpgradeLog.objects.get().rollback_status == "success"
    assert not Alert.objects.exists()


def test_second_completion_is_a_conflict_and_changes_nothing(cast):
    rollback_id = cast.plugin_a.post("rollback/initiate", INITIATE).json()["rollback_id"]
    cast.plugin_a.post(f"rollback/{rollback_id}/complete", COMPLETE)
    again = cast.plugin_a.post(
        f"rollback/{rollback_id}/complete", {**COMPLETE, "success": False, "duration_ms": 9}
    )
    assert_error(again, 409)
    rollback = RollbackHistory.objects.get(pk=rollback_id)
    assert rollback.success is True and rollback.duration_ms == 1500


def test_failed_rollback_raises_an_alert(cast, django_capture_on_commit_callbacks):
    rollback_id = cast.plugin_a.post("rollback/initiate", INITIATE).json()["rollback_id"]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = cast.plugin_a.post(
            f"rollback/{rollback_id}/complete",
            {
                **COMPLETE,
                "success": False,
                "db_restored": False,
                "error_message": "Backup table missing",
            },
        )
    assert len(callbacks) == 1  # delivery is queued after commit, never inside the request
    assert response.status_code == 200
    alert = Alert.objects.get()
    assert alert.kind == "rollback_failed"
    assert alert.dedup_key == f"rollback-failed-{rollback_id}"
    assert alert.custom_details["error_message"] == "Backup table missing"
    # No PagerDuty URL configured here: the alert is stored and marked as such.
    assert alert.status == "not_configured"
    assert UpgradeLog.objects.get().rollback_status == "failed"


def test_plugin_cannot_complete_another_merchants_rollback(cast):
    rollback = PendingRollbackFactory(merchant_id=MERCHANT_A, rollback_trigger="automatic")
    assert_error(cast.plugin_b.post(f"rollback/{rollback.rollback_id}/complete", COMPLETE), 403)
    rollback.refresh_from_db()
    assert rollback.completed_at is None


def test_completing_an_unknown_rollback_is_404(cast):
    assert_error(cast.ops.post(f"rollback/{uuid.uuid4()}/complete", COMPLETE), 404)
    assert_error(cast.ops.post("rollback/not-a-uuid/complete", COMPLETE), 404)


@pytest.mark.parametrize(
    "body",
    [
        {**COMPLETE, "success": "yes"},
        {**COMPLETE, "duration_ms": "fast"},
        {**COMPLETE, "files_restored": -3},
        {k: v for k, v in COMPLETE.items() if k != "db_restored"},
    ],
)
def test_bad_completion_changes_nothing(cast, body):
    rollback_id = cast.plugin_a.post("rollback/initiate", INITIATE).json()["rollback_id"]
    assert_error(cast.plugin_a.post(f"rollback/{rollback_id}/complete", body), 400)
    assert RollbackHistory.objects.get(pk=rollback_id).completed_at is None


def test_plugin_cannot_force_a_rollback(cast):
    response = cast.plugin_a.post("rollback/initiate", {**INITIATE, "trigger": "operator_forced"})
    assert_error(response, 403)
    assert not RollbackHistory.objects.exists()


def test_plugin_may_record_a_manual_rollback_on_its_own_host(cast):
    response = cast.plugin_a.post("rollback/initiate", {**INITIATE, "trigger": "manual"})
    assert response.status_code == 201


def test_plugin_cannot_initiate_for_another_merchant(cast):
    assert_error(cast.plugin_b.post("rollback/initiate", INITIATE), 403)
    assert not RollbackHistory.objects.exists()


def test_operator_forced_rollback_reaches_the_merchant_agent(cast):
    """Seed case 3: ops force a rollback; the agent polls pending, performs it, completes it."""
    forced = cast.ops.post(
        "rollback/initiate",
        {**INITIATE, "trigger": "operator_forced", "reason": "Performance degradation reported"},
    )
    assert forced.status_code == 201
    rollback_id = forced.json()["rollback_id"]
    audit = AuditEntry.objects.get(action="rollback.forced")
    assert audit.actor == "client:ops" and audit.object_id == rollback_id

    pending = cast.plugin_a.get("rollback/pending", {"plugin_name": "woocommerce"})
    assert pending.status_code == 200
    assert [r["rollback_id"] for r in pending.json()["rollbacks"]] == [rollback_id]
    assert cast.plugin_b.get("rollback/pending").json()["rollbacks"] == []

    cast.plugin_a.post(f"rollback/{rollback_id}/complete", COMPLETE)
    assert cast.plugin_a.get("rollback/pending").json()["rollbacks"] == []
    log = UpgradeLog.objects.get(merchant_id=MERCHANT_A)
    assert log.rollback_status == "success"


def test_a_second_forced_rollback_while_one_is_pending_is_a_conflict(cast):
    body = {**INITIATE, "trigger": "operator_forced"}
    assert cast.admin.post("rollback/initiate", body).status_code == 201
    assert_error(cast.ops.post("rollback/initiate", body), 409)
    assert RollbackHistory.objects.count() == 1


def test_plugin_cannot_read_another_merchants_pending_rollbacks(cast):
    assert_error(cast.plugin_b.get("rollback/pending", {"merchant_id": str(MERCHANT_A)}), 403)


def test_ops_list_pending_rollbacks_of_every_merchant(cast):
    PendingRollbackFactory(merchant_id=MERCHANT_A)
    PendingRollbackFactory(merchant_id=MERCHANT_B)
    assert len(cast.ops.get("rollback/pending").json()["rollbacks"]) == 2
    assert len(cast.ops.get("rollback/pending", {"merchant_id": str(MERCHANT_B)}).json()["rollbacks"]) == 1
