"""Bad input gets one JSON error format, never a 500 or an HTML page."""

from __future__ import annotations

import json

import pytest

from rollbacks.models import UpgradeLog
from tests.conftest import MERCHANT_A, assert_error

pytestmark = pytest.mark.django_db


def test_malformed_json_is_400(cast):
    body = assert_error(cast.ops.post("upgrades", '{"merchant_id": '), 400)
    assert "JSON" in body["error"]


def test_seed_curl_without_content_type_is_read_as_json(cast):
    """curl -d '{...}' sends form encoding; the seed's examples rely on it being JSON."""
    payload = json.dumps(
        {
            "merchant_id": str(MERCHANT_A),
            "plugin_name": "woocommerce",
            "from_version": "3.9.0",
            "to_version": "4.0.0",
            "status": "success",
        }
    )
    response = cast.ops.client.post(
        "/api/plugins/upgrades", payload, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 201, response.content
    assert UpgradeLog.objects.count() == 1


def test_body_over_one_mebibyte_is_413(cast):
    big = '{"pad": "' + "x" * (1024 * 1024 + 10) + '"}'
    body = assert_error(cast.ops.post("upgrades", big), 413)
    assert "1 MiB" in body["error"]
    assert not UpgradeLog.objects.exists()


def test_unknown_api_url_is_json_404(cast):
    assert_error(cast.ops.get("no-such-thing"), 404)
    assert_error(cast.ops.get("/api/elsewhere"), 404)


def test_wrong_method_is_405(cast):
    assert_error(cast.ops.delete("rollback/history"), 405)
    assert_error(cast.ops.get("upgrades"), 405)


def test_unauthenticated_is_401_json(cast):
    assert_error(cast.anonymous.get("rollback/history"), 401)


def test_malformed_authorization_header_is_401(cast):
    from rest_framework.test import APIClient

    response = APIClient().get("/api/plugins/rollback/stats", HTTP_AUTHORIZATION="Bearer a b")
    assert_error(response, 401)


def test_every_response_carries_a_request_id(cast):
    response = cast.ops.get("rollback/stats", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    assert len(cast.ops.get("rollback/stats")["X-Request-ID"]) == 32


def test_plugin_credentials_are_throttled(cast, settings):
    from molam_upgrades.throttling import PluginCredentialThrottle

    PluginCredentialThrottle.THROTTLE_RATES = {"plugin": "3/min"}
    try:
        responses = [cast.plugin_a.get("rollback/pending") for _ in range(4)]
        ops_response = cast.ops.get("rollback/pending")
    finally:
        PluginCredentialThrottle.THROTTLE_RATES = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    body = assert_error(responses[-1], 429)
    assert responses[-1]["Retry-After"]
    assert "retry" in body["error"].lower()
    assert ops_response.status_code == 200  # ops credentials are not throttled
