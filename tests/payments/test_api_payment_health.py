"""POST payment-health: bound to the plugin credential's merchant, idempotent, validated."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from payments.models import PaymentHealthReport
from tests.conftest import MERCHANT_A, MERCHANT_B, assert_error

pytestmark = pytest.mark.django_db


def hour(hours_ago: int = 1) -> str:
    return (
        timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)
    ).isoformat()


def body(merchant=MERCHANT_A, **overrides) -> dict:
    return {
        "merchant_id": str(merchant),
        "plugin_name": "woocommerce",
        "installed_version": "4.0.0",
        "hour": hour(),
        "attempted": 120,
        "succeeded": 114,
        "failed_by_reason": {"declined": 4, "gateway_error": 1},
        "latency_ms": {"count": 120, "p50": 410.5, "p95": 1250.0},
        **overrides,
    }


def test_a_plugin_reports_an_hour_of_its_own_merchant(cast):
    response = cast.plugin_a.post("payment-health", body())

    assert response.status_code == 201, response.content
    data = response.json()
    assert data["ok"] is True and data["created"] is True
    assert data["payment_health"]["failed"] == 5
    assert data["payment_health"]["failed_by_reason"] == {"declined": 4, "gateway_error": 1}
    report = PaymentHealthReport.objects.get()
    assert (report.merchant_id, report.attempted, report.succeeded, report.latency_p95_ms) == (
        MERCHANT_A,
        120,
        114,
        1250.0,
    )


def test_another_merchant_is_refused_and_nothing_is_written(cast):
    assert_error(cast.plugin_a.post("payment-health", body(merchant=MERCHANT_B)), 403)
    assert not PaymentHealthReport.objects.exists()


def test_ops_may_post_for_any_merchant(cast):
    assert cast.ops.post("payment-health", body(merchant=MERCHANT_B)).status_code == 201
    assert cast.admin.post("payment-health", body(merchant=MERCHANT_A)).status_code == 201
    assert PaymentHealthReport.objects.count() == 2


@pytest.mark.parametrize("who", ["viewer", "sira", "anonymous"])
def test_readers_and_strangers_cannot_report(cast, who):
    response = getattr(cast, who).post("payment-health", body())
    assert_error(response, 401 if who == "anonymous" else 403)
    assert not PaymentHealthReport.objects.exists()


def test_the_same_idempotency_key_replays_the_first_answer_and_writes_nothing(cast):
    first = cast.plugin_a.post("payment-health", body(), HTTP_IDEMPOTENCY_KEY="hour-1")
    replay = cast.plugin_a.post("payment-health", body(), HTTP_IDEMPOTENCY_KEY="hour-1")

    assert first.status_code == replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert PaymentHealthReport.objects.count() == 1
    different = cast.plugin_a.post("payment-health", body(attempted=500), HTTP_IDEMPOTENCY_KEY="hour-1")
    assert_error(different, 409)


def test_an_hour_sent_again_with_new_figures_replaces_the_old_ones(cast):
    cast.plugin_a.post("payment-health", body(attempted=60, succeeded=58, failed_by_reason={"declined": 2}))
    response = cast.plugin_a.post("payment-health", body())

    assert response.status_code == 200 and response.json()["created"] is False
    report = PaymentHealthReport.objects.get()
    assert report.attempted == 120 and report.failed == 5


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"succeeded": 119}, "attempted"),  # 119 + 5 failures > 120
        ({"hour": "2026-11-29T08:30:00Z"}, "hour"),
        (
            {
                "hour": (timezone.now() + timedelta(hours=2))
                .replace(minute=0, second=0, microsecond=0)
                .isoformat()
            },
            "hour",
        ),
        ({"hour": hour(24 * 8)}, "hour"),
        ({"failed_by_reason": {"bad_luck": 3}}, "failed_by_reason"),
        ({"failed_by_reason": {"declined": -1}}, "failed_by_reason"),
        ({"attempted": "120"}, "attempted"),
        ({"installed_version": "latest"}, "installed_version"),
        ({"latency_ms": {"count": 5}}, "latency_ms"),
        ({"latency_ms": {"count": 5, "p50": 900, "p95": 100}}, "latency_ms"),
        ({"merchant_id": 12}, "merchant_id"),
    ],
)
def test_bad_figures_are_a_clear_400_and_change_nothing(cast, overrides, field):
    body_ = assert_error(cast.ops.post("payment-health", body(**overrides)), 400)
    assert field in str(body_["details"]) or field in body_["error"], body_
    assert not PaymentHealthReport.objects.exists()


def test_the_hour_is_the_start_of_a_utc_hour_whatever_the_server_time_zone(cast, settings):
    settings.TIME_ZONE = "Asia/Kolkata"  # UTC+05:30: its hours start at :30 in UTC
    utc_hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)

    kolkata_hour = utc_hour.replace(tzinfo=None).isoformat() + "+05:30"  # 30 minutes past a UTC hour
    assert_error(cast.plugin_a.post("payment-health", body(hour=kolkata_hour)), 400)
    assert not PaymentHealthReport.objects.exists()

    response = cast.plugin_a.post("payment-health", body(hour=utc_hour.isoformat()))
    assert response.status_code == 201, response.content
    assert PaymentHealthReport.objects.get().hour == utc_hour


def test_a_plugin_lists_only_its_own_reports(cast):
    cast.ops.post("payment-health", body(merchant=MERCHANT_A))
    cast.ops.post("payment-health", body(merchant=MERCHANT_B))

    mine = cast.plugin_a.get("payment-health")
    assert mine.status_code == 200
    assert [r["merchant_id"] for r in mine.json()["reports"]] == [str(MERCHANT_A)]
    assert_error(cast.plugin_a.get("payment-health", {"merchant_id": str(MERCHANT_B)}), 403)
    assert cast.viewer.get("payment-health").json()["total"] == 2


def test_the_endpoints_are_in_the_openapi_schema(cast):
    schema = cast.ops.get("/api/schema/?format=json")
    paths = schema.json()["paths"] if schema["Content-Type"].startswith("application/json") else {}
    if not paths:
        import yaml

        paths = yaml.safe_load(schema.content)["paths"]
    assert "/api/plugins/payment-health" in paths
    assert "post" in paths["/api/plugins/payment-health"]
    assert "/api/plugins/canary-analyses/{rollout_id}" in paths
    assert "/api/plugins/merchants" in paths
