"""Two concurrent requests with the same Idempotency-Key write once."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connections
from rest_framework.test import APIClient

from molam_upgrades.credentials import create_api_client
from rollbacks.models import UpgradeLog
from tests.conftest import MERCHANT_A

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("uses_postgres")]


def test_concurrent_replays_write_one_report():
    _, token = create_api_client(name="race", role="plugin", merchant_id=MERCHANT_A, actor="test")
    body = json.dumps(
        {
            "merchant_id": str(MERCHANT_A),
            "plugin_name": "woocommerce",
            "from_version": "3.9.0",
            "to_version": "4.0.0",
            "status": "failed",
        }
    )
    barrier = threading.Barrier(6)
    responses = []

    def post():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_IDEMPOTENCY_KEY="same-key")
        barrier.wait()
        try:
            responses.append(client.post("/api/plugins/upgrades", body, content_type="application/json"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert [r.status_code for r in responses] == [201] * 6
    assert len({r.json()["upgrade_log"]["id"] for r in responses}) == 1
    assert UpgradeLog.objects.count() == 1
