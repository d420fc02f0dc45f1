"""PagerDuty Events API v2 delivery, against a real local HTTP receiver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from molam_upgrades.alerts import raise_alert
from molam_upgrades.models import Alert
from molam_upgrades.tasks import send_alert, send_pending_alerts

pytestmark = pytest.mark.django_db


class Receiver:
    """A tiny Events API endpoint: records payloads, answers with the configured statuses."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                receiver.received.append(json.loads(self.rfile.read(length)))
                status = receiver.statuses.pop(0) if receiver.statuses else 202
                body = json.dumps(
                    {"status": "success", "dedup_key": receiver.received[-1].get("dedup_key")}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2/enqueue"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pagerduty(settings):
    settings.PAGERDUTY_ROUTING_KEY = "R0UTINGKEY"

    def start(statuses=()):
        receiver = Receiver(statuses)
        settings.PAGERDUTY_EVENTS_URL = receiver.url
        return receiver

    return start


def test_alert_is_delivered_as_a_pagerduty_event(pagerduty, django_capture_on_commit_callbacks):
    with pagerduty() as receiver:
        with django_capture_on_commit_callbacks(execute=True):
            alert = raise_alert(
                kind="rollback_failed",
                summary="Plugin rollback failed: woocommerce",
                dedup_key="rb-1",
                details={"merchant_id": "m"},
            )
    alert.refresh_from_db()
    assert alert.status == "sent" and alert.attempts == 1 and alert.sent_at is not None
    (event,) = receiver.received
    assert (
        event["routing_key"] == "R0UTINGKEY"
        and event["event_action"] == "trigger"
        and event["dedup_key"] == "rb-1"
    )
    assert event["payload"]["summary"] == "Plugin rollback failed: woocommerce"
    assert event["payload"]["severity"] == "error" and event["payload"]["source"]
    assert event["payload"]["custom_details"] == {"merchant_id": "m"}


def test_delivery_retries_then_succeeds(pagerduty, django_capture_on_commit_callbacks, monkeypatch):
    # Eager Celery runs retries inline; the countdown is not waited for.
    with pagerduty(statuses=[500, 503]) as receiver:
        with django_capture_on_commit_callbacks(execute=True):
            alert = raise_alert(kind="k", summary="s", dedup_key="d")
    alert.refresh_from_db()
    assert len(receiver.received) == 3
    assert alert.status == "sent" and alert.attempts == 3


def test_delivery_gives_up_after_the_last_attempt(pagerduty, django_capture_on_commit_callbacks):
    with pagerduty(statuses=[500] * 10) as receiver:
        with django_capture_on_commit_callbacks(execute=True):
            alert = raise_alert(kind="k", summary="s", dedup_key="d")
    alert.refresh_from_db()
    assert alert.status == "failed" and alert.attempts == 6 and "HTTP 500" in alert.last_error
    assert len(receiver.received) == 6


def test_unreachable_receiver_is_a_failed_delivery(settings):
    settings.PAGERDUTY_EVENTS_URL = "http://127.0.0.1:9/refused"
    alert = Alert.objects.create(kind="k", summary="s", dedup_key="d")
    send_alert.delay(alert.pk)
    alert.refresh_from_db()
    assert alert.status == "failed" and "Connection" in alert.last_error


def test_sent_alerts_are_not_sent_twice(pagerduty):
    with pagerduty() as receiver:
        alert = Alert.objects.create(kind="k", summary="s", dedup_key="d")
        send_alert.delay(alert.pk)
        send_alert.delay(alert.pk)
    assert len(receiver.received) == 1


def test_pending_alerts_written_by_sql_are_swept(pagerduty):
    from datetime import timedelta

    from django.utils import timezone

    with pagerduty() as receiver:
        alert = Alert.objects.create(kind="rollout_auto_paused", summary="s", dedup_key="d")
        Alert.objects.filter(pk=alert.pk).update(created_at=timezone.now() - timedelta(minutes=2))
        assert send_pending_alerts.delay().get() == 1
    alert.refresh_from_db()
    assert alert.status == "sent" and len(receiver.received) == 1
