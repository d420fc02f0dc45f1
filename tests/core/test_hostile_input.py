"""Hostile input found by probing: each is a clear 4xx, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100000 + "]" * 100000,
        '{"percentage": NaN, "plugin_name": "w", "version": "1.0.0"}',
        '{"percentage": Infinity, "plugin_name": "w", "version": "1.0.0"}',
        '{"percentage": 1e400, "plugin_name": "w", "version": "1.0.0"}',
        b'{"plugin_name": "\xff\xfe"}',
        '{"plugin_name": "w\\u0000x", "version": "1.0.0", "percentage": 5}',
        '{"plugin_name": "w", "version": "1.0.0", "percentage": 5, "metadata": "x"}',
        '{"plugin_name": "w", "version": "1.0.0", "percentage": 5, "target_countries": "US", "strategy": "geo"}',
        '{"plugin_name": "w", "version": "1.0.0", "percentage": 5, "min_sample_size": 1e10}',
        '{"plugin_name": "w", "version": "1.0.0", "percentage": 5, "error_threshold": -0.0}',
        '{"plugin_name": "w", "version": "1.0.0", "percentage": true}',
    ],
)
def test_hostile_rollout_bodies_are_400(cast, body):
    r = cast.ops.post("rollouts", body)
    assert r.status_code == 400, r.content[:200]
    assert r.json()["ok"] is False


def test_hostile_paths_and_queries_are_4xx(cast):
    for q in [
        "merchant_id=%00",
        "merchant_id=123e4567-e89b-12d3-a456-426614174000&country=%00%00",
        "merchant_id=123e4567-e89b-12d3-a456-426614174000&tier=%00",
    ]:
        r = cast.ops.client.get("/api/plugins/rollouts/woocommerce/should-upgrade?" + q)
        assert r.status_code == 400
    for q in ["plugin_name=%00", "merchant_id=%00", "limit=%00", "limit=99999999999999999999999"]:
        r = cast.ops.client.get("/api/plugins/rollback/history?" + q)
        assert r.status_code == 400, (q, r.content[:200])
        assert r.json()["ok"] is False
    for path in ["/api/plugins/rollouts/%00", "/api/plugins/rollouts/" + "a" * 5000]:
        assert cast.ops.client.get(path).status_code == 404
    assert cast.ops.patch("rollouts/99999999999999999999999999", {"percentage": 5}).status_code == 404
    assert cast.ops.post("rollouts/99999999999999999999999999/pause", {}).status_code == 404
    assert cast.ops.post("rollouts/424242/resume").status_code == 404
