"""The merchant registry for ops: roles, validation, audit, secret shown once, high_value for pay_admin."""

from __future__ import annotations

import uuid

import pytest

from merchants.models import Merchant
from molam_upgrades.models import AuditEntry
from tests.conftest import assert_error

from .factories import MerchantFactory

pytestmark = pytest.mark.django_db


def new_merchant(**overrides) -> dict:
    return {
        "merchant_id": str(uuid.uuid4()),
        "name": "Boutique Dakar",
        "country": "SN",
        "tier": "pro",
        "contact_email": "ops@boutique.example",
        "webhook_url": "https://boutique.example/molam/notices",
        "quiet_start": "22:00",
        "quiet_end": "06:00",
        "time_zone": "Africa/Dakar",
        **overrides,
    }


def test_an_operator_registers_a_merchant_and_sees_the_secret_once(cast):
    body = new_merchant()
    response = cast.ops.post("merchants", body)

    assert response.status_code == 201, response.content
    data = response.json()
    merchant = Merchant.objects.get(pk=body["merchant_id"])
    assert data["webhook_secret"] == merchant.webhook_secret and len(merchant.webhook_secret) == 64
    assert data["merchant"]["quiet_period"] == "22:00–06:00 Africa/Dakar"
    read = cast.viewer.get(f"merchants/{body['merchant_id']}").json()
    assert "webhook_secret" not in read["merchant"]
    entry = AuditEntry.objects.get(action="merchant.registered")
    assert entry.actor == "client:ops" or entry.actor.endswith("ops")
    assert "webhook_secret" not in entry.after


def test_only_pay_admin_sets_or_clears_the_high_value_flag(cast):
    assert_error(cast.ops.post("merchants", new_merchant(high_value=True)), 403)
    created = cast.admin.post("merchants", new_merchant(high_value=True)).json()["merchant"]
    assert created["high_value"] is True
    path = f"merchants/{created['merchant_id']}"
    assert_error(cast.ops.patch(path, {"high_value": False}), 403)
    assert Merchant.objects.get(pk=created["merchant_id"]).high_value is True
    assert cast.ops.patch(path, {"tier": "enterprise"}).status_code == 200
    assert cast.admin.patch(path, {"high_value": False}).json()["merchant"]["high_value"] is False
    entry = AuditEntry.objects.filter(action="merchant.updated").latest("id")
    assert entry.before == {"high_value": True} and entry.after == {"high_value": False}


@pytest.mark.parametrize("who", ["viewer", "sira", "plugin_a"])
def test_non_operators_cannot_register(cast, who):
    assert_error(getattr(cast, who).post("merchants", new_merchant()), 403)
    assert not Merchant.objects.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        {"webhook_url": "http://boutique.example/hook"},
        {"webhook_url": "ftp://boutique.example"},
        {"country": "sn"},
        {"time_zone": "Mars/Olympus"},
        {"quiet_start": "22:00", "quiet_end": None},
        {"contact_email": "not-an-email"},
        {"merchant_id": "nope"},
        {"name": 12},
    ],
)
def test_bad_input_is_a_400_and_nothing_is_written(cast, overrides):
    assert_error(cast.ops.post("merchants", new_merchant(**overrides)), 400)
    assert not Merchant.objects.exists()


def test_a_loopback_http_webhook_is_allowed_for_local_receivers(cast, settings):
    settings.MERCHANT_WEBHOOK_ALLOW_PRIVATE = True  # the development and test default (DEBUG=1)
    assert (
        cast.ops.post("merchants", new_merchant(webhook_url="http://127.0.0.1:9000/hook")).status_code == 201
    )


def test_registering_twice_is_a_conflict(cast):
    body = new_merchant()
    cast.ops.post("merchants", body)
    assert_error(cast.ops.post("merchants", body), 409)


def test_rotating_the_secret_changes_it_and_is_audited(cast):
    merchant = MerchantFactory()
    old = merchant.webhook_secret
    response = cast.ops.post(f"merchants/{merchant.pk}/rotate-secret")
    assert response.status_code == 200
    merchant.refresh_from_db()
    assert merchant.webhook_secret != old and response.json()["webhook_secret"] == merchant.webhook_secret
    assert AuditEntry.objects.filter(action="merchant.webhook_secret_rotated").count() == 1


def test_list_filters_and_unknown_merchant(cast):
    MerchantFactory(country="SN", high_value=True)
    MerchantFactory(country="CI")
    listed = cast.viewer.get("merchants", {"high_value": "true"}).json()
    assert listed["total"] == 1 and listed["merchants"][0]["country"] == "SN"
    assert_error(cast.viewer.get(f"merchants/{uuid.uuid4()}"), 404)
    assert_error(cast.plugin_a.get("merchants"), 403)


def test_quiet_hours_are_wall_clock_hh_mm_without_an_offset(cast):
    body = new_merchant()
    refused = cast.ops.post("merchants", {**body, "quiet_start": "12:22:20.252-20:40", "quiet_end": "05:00"})
    assert refused.status_code == 400, refused.content
    assert not Merchant.objects.filter(pk=body["merchant_id"]).exists()
    created = cast.ops.post("merchants", {**body, "quiet_start": "22:30", "quiet_end": "06:00"})
    assert created.status_code == 201, created.content
    assert created.json()["merchant"]["quiet_start"] == "22:30"
    assert created.json()["merchant"]["quiet_end"] == "06:00"
