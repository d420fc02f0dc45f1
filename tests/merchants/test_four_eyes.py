"""Four-eyes rollbacks: a forced rollback of a high-value merchant waits for a second pay_admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from merchants.models import MerchantNotice
from molam_upgrades.models import AuditEntry
from rollbacks import approvals
from rollbacks.models import RollbackHistory
from tests.conftest import MERCHANT_A, MERCHANT_B, assert_error
from tests.dashboards.conftest import login
from tests.factories import UserFactory

from .factories import HighValueMerchantFactory, MerchantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def high_value(db):
    return HighValueMerchantFactory(id=MERCHANT_A, webhook_url="", contact_email="cfo@grand.example")


def force(api, merchant=MERCHANT_A, **overrides):
    body = {
        "merchant_id": str(merchant),
        "plugin_name": "woocommerce",
        "from_version": "4.0.0",
        "to_version": "3.9.0",
        "trigger": "operator_forced",
        "reason": "Checkout errors after 4.0.0",
        **overrides,
    }
    return api.post("rollback/initiate", body)


def pending(api, merchant=MERCHANT_A) -> list[str]:
    response = api.get("rollback/pending", {"merchant_id": str(merchant), "plugin_name": "woocommerce"})
    assert response.status_code == 200, response.content
    return [r["rollback_id"] for r in response.json()["rollbacks"]]


def actions(rollback_id) -> list[tuple[str, str]]:
    return list(
        AuditEntry.objects.filter(object_id=str(rollback_id)).order_by("id").values_list("action", "actor")
    )


def test_a_forced_rollback_of_an_ordinary_merchant_behaves_as_before(cast):
    MerchantFactory(id=MERCHANT_B, webhook_url="")
    response = force(cast.ops, MERCHANT_B)

    assert response.status_code == 201
    body = response.json()
    assert body["ok"] is True and set(body) >= {"ok", "rollback_id"}
    assert pending(cast.plugin_b, MERCHANT_B) == [body["rollback_id"]]
    assert RollbackHistory.objects.get(pk=body["rollback_id"]).approval_status is None
    # The merchant is told before its agent performs it.
    notice = MerchantNotice.objects.get(merchant_id=MERCHANT_B)
    assert notice.kind == "forced_rollback" and "from 4.0.0 to 3.9.0" in notice.payload["message"]


def test_an_unregistered_merchant_needs_no_approval(cast):
    response = force(cast.ops, MERCHANT_B)
    assert pending(cast.plugin_b, MERCHANT_B) == [response.json()["rollback_id"]]


def test_a_high_value_merchant_waits_for_a_second_pay_admin(cast, high_value):
    response = force(cast.ops)

    assert response.status_code == 201
    rollback_id = response.json()["rollback_id"]
    assert response.json()["rollback"]["approval_status"] == "awaiting_approval"
    # The plugin never sees an unapproved rollback, and cannot report it done.
    assert pending(cast.plugin_a) == []
    assert pending(cast.ops) == []
    assert_error(
        cast.plugin_a.post(
            f"rollback/{rollback_id}/complete",
            {"success": True, "duration_ms": 10, "files_restored": 1, "db_restored": True},
        ),
        409,
    )
    assert not MerchantNotice.objects.exists()  # nothing is announced before it is approved

    approved = cast.admin.post(f"rollback/{rollback_id}/approve", {"reason": "Confirmed with the merchant"})

    assert approved.status_code == 200, approved.content
    assert approved.json()["rollback"]["approval_status"] == "approved"
    rollback = RollbackHistory.objects.get(pk=rollback_id)
    assert (rollback.decided_by, rollback.decision_reason) == ("client:admin", "Confirmed with the merchant")
    assert pending(cast.plugin_a) == [rollback_id]
    assert actions(rollback_id) == [
        ("rollback.forced", "client:ops"),
        ("rollback.approval_requested", "client:ops"),
        ("rollback.approved", "client:admin"),
    ]
    notice = MerchantNotice.objects.get(merchant_id=MERCHANT_A)
    assert notice.kind == "forced_rollback" and "rollback to 3.9.0" in notice.subject
    done = cast.plugin_a.post(
        f"rollback/{rollback_id}/complete",
        {"success": True, "duration_ms": 1200, "files_restored": 40, "db_restored": True},
    )
    assert done.status_code == 200


def test_the_person_who_forced_it_cannot_approve_it(cast, high_value):
    rollback_id = force(cast.admin).json()["rollback_id"]  # a pay_admin forced it

    assert_error(cast.admin.post(f"rollback/{rollback_id}/approve"), 403)
    assert_error(cast.admin.post(f"rollback/{rollback_id}/reject"), 403)

    assert RollbackHistory.objects.get(pk=rollback_id).approval_status == "awaiting_approval"
    assert pending(cast.plugin_a) == []


@pytest.mark.parametrize("who", ["ops", "viewer", "sira", "plugin_a"])
def test_only_pay_admin_decides(cast, high_value, who):
    rollback_id = force(cast.ops).json()["rollback_id"]
    assert_error(getattr(cast, who).post(f"rollback/{rollback_id}/approve"), 403)
    assert RollbackHistory.objects.get(pk=rollback_id).approval_status == "awaiting_approval"


def test_a_rejected_rollback_never_reaches_the_agent(cast, high_value):
    rollback_id = force(cast.ops).json()["rollback_id"]

    rejected = cast.admin.post(f"rollback/{rollback_id}/reject", {"reason": "Wrong merchant"})

    assert rejected.status_code == 200 and rejected.json()["rollback"]["approval_status"] == "rejected"
    assert pending(cast.plugin_a) == []
    assert_error(cast.admin.post(f"rollback/{rollback_id}/approve"), 409)
    assert actions(rollback_id)[-1] == ("rollback.rejected", "client:admin")
    # A new forced rollback may be requested after a rejection.
    assert force(cast.ops).status_code == 201


def test_an_unanswered_request_expires_and_is_never_executed(cast, high_value, settings):
    settings.ROLLBACK_APPROVAL_TTL_HOURS = 2
    rollback_id = force(cast.ops).json()["rollback_id"]

    with time_machine.travel(timezone.now() + timedelta(hours=2, minutes=1)):
        assert approvals.expire_approvals() == 1
        assert approvals.expire_approvals() == 0  # a second run does nothing
        assert_error(cast.admin.post(f"rollback/{rollback_id}/approve"), 409)
        assert pending(cast.plugin_a) == []
    assert RollbackHistory.objects.get(pk=rollback_id).approval_status == "expired"
    assert actions(rollback_id)[-1] == ("rollback.approval_expired", "system")


def test_an_approval_no_agent_picked_up_expires_too(cast, high_value, settings):
    settings.ROLLBACK_APPROVAL_TTL_HOURS = 1
    rollback_id = force(cast.ops).json()["rollback_id"]
    cast.admin.post(f"rollback/{rollback_id}/approve")
    assert pending(cast.plugin_a) == [rollback_id]

    with time_machine.travel(timezone.now() + timedelta(minutes=61)):
        # Hidden from the agent as soon as the window closes, before the sweeper runs.
        assert pending(cast.plugin_a) == []
        assert approvals.expire_approvals() == 1
    assert RollbackHistory.objects.get(pk=rollback_id).approval_status == "expired"


def test_unknown_rollback_and_bad_input(cast, high_value):
    import uuid

    assert_error(cast.admin.post(f"rollback/{uuid.uuid4()}/approve"), 404)
    rollback_id = force(cast.ops).json()["rollback_id"]
    assert_error(cast.admin.post(f"rollback/{rollback_id}/approve", {"reason": 12}), 400)
    assert RollbackHistory.objects.get(pk=rollback_id).approval_status == "awaiting_approval"


def test_the_dashboard_gives_the_buttons_to_a_second_pay_admin_only(cast, high_value):
    requester = UserFactory(username="olivia", roles=["pay_admin"])
    rollback = approvals.RollbackHistory.objects.get(pk=_force_as(requester))
    other_admin = login(UserFactory(username="paula", roles=["pay_admin"]))
    ops = login(UserFactory(username="omar", roles=["ops_plugins"]))

    html = login(requester).get("/ops/rollback-approvals").content.decode()
    assert "another payments admin must decide" in html and 'name="reason"' not in html
    assert "Approve" in other_admin.get("/ops/rollback-approvals").content.decode()

    assert ops.submit(f"/ops/rollbacks/{rollback.pk}/approve").status_code == 403
    assert login(requester).submit(f"/ops/rollbacks/{rollback.pk}/approve").status_code == 302
    assert RollbackHistory.objects.get(pk=rollback.pk).approval_status == "awaiting_approval"

    response = other_admin.submit(
        f"/ops/rollbacks/{rollback.pk}/reject", {"reason": "Not needed"}, follow=True
    )
    assert "rejected" in response.content.decode()
    rollback.refresh_from_db()
    assert (rollback.approval_status, rollback.decided_by) == ("rejected", "user:paula")


def _force_as(user) -> str:
    from rollbacks import services

    return str(
        services.initiate_rollback(
            actor=f"user:{user.username}",
            merchant_id=MERCHANT_A,
            plugin_name="woocommerce",
            from_version="4.0.0",
            to_version="3.9.0",
            trigger="operator_forced",
            reason="Checkout errors",
        ).pk
    )
