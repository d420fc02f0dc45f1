"""An alert never fails the request that raised it: with the broker down it stays pending and the
retry sweeper sends it later. The broker is a real, unreachable Redis URL (nothing listens there)."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from molam_upgrades import housekeeping
from molam_upgrades.celery import app as celery_app
from molam_upgrades.models import Alert
from rollouts.models import AutoCheckRun, Rollout
from tests.factories import PendingRollbackFactory, UpgradeLogFactory

from .test_alerts import pagerduty  # noqa: F401  (a real local PagerDuty receiver)

pytestmark = pytest.mark.django_db

COMPLETE_FAILED = {"success": False, "duration_ms": 900, "files_restored": 3, "db_restored": False}


def _closed_port() -> int:
    with socket.socket() as sock:  # bound then closed: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broker_down():
    saved = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    celery_app.conf.broker_url = f"redis://127.0.0.1:{_closed_port()}/0"
    celery_app.conf.task_always_eager = False
    # enqueue_delivery opens a connection of its own from broker_url (no shared pool to reset).
    yield
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = saved


def test_a_failed_rollback_is_recorded_and_answered_with_the_broker_down(
    cast, broker_down, django_capture_on_commit_callbacks
):
    rollback = PendingRollbackFactory(merchant_id=cast.plugin_a.merchant_id)
    with django_capture_on_commit_callbacks(execute=True):
        response = cast.plugin_a.post(f"rollback/{rollback.rollback_id}/complete", COMPLETE_FAILED)
    assert response.status_code == 200, response.content
    assert response.json()["rollback"]["success"] is False
    alert = Alert.objects.get(kind="rollback_failed")
    assert alert.status == "pending" and alert.attempts == 0  # stored, not sent, not lost


def test_auto_check_finishes_its_run_and_answers_200_with_the_broker_down(
    cast, broker_down, django_capture_on_commit_callbacks
):
    cast.ops.post("rollouts", {"plugin_name": "shopify", "version": "2.5.0", "percentage": 20})
    for _ in range(20):
        UpgradeLogFactory(plugin_name="shopify", to_version="2.5.0", status="failed")
    with django_capture_on_commit_callbacks(execute=True):
        response = cast.sira.post("rollouts/auto-check")
    assert response.status_code == 200, response.content
    assert response.json()["paused_count"] == 1
    assert Rollout.objects.get().status == "paused"
    assert AutoCheckRun.objects.get().finished_at is not None
    assert Alert.objects.get(kind="rollout_auto_paused").status == "pending"


def test_the_sweeper_sends_the_pending_alert_once_it_can(
    cast,
    broker_down,
    django_capture_on_commit_callbacks,
    pagerduty,  # noqa: F811
):
    rollback = PendingRollbackFactory(merchant_id=cast.plugin_a.merchant_id)
    with django_capture_on_commit_callbacks(execute=True):
        cast.plugin_a.post(f"rollback/{rollback.rollback_id}/complete", COMPLETE_FAILED)
    alert = Alert.objects.get(kind="rollback_failed")
    with pagerduty() as receiver:
        later = timezone.now() + timedelta(minutes=1)
        assert housekeeping.retry_unsent_alerts(later, dispatch=housekeeping.deliver_inline) == 1
    alert.refresh_from_db()
    assert alert.status == "sent" and len(receiver.received) == 1


def test_with_the_broker_up_the_alert_is_queued_for_the_worker(settings):
    import redis

    from molam_upgrades.alerts import enqueue_delivery, raise_alert

    if not settings.REDIS_URL:
        pytest.fail("needs REDIS_URL: the broker under test is a real Redis")
    saved = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = settings.REDIS_URL, False
    queue = redis.Redis.from_url(settings.REDIS_URL)
    queue.delete("celery")
    try:
        alert = raise_alert(kind="rollback_failed", summary="x", dedup_key="queued-1")
        assert enqueue_delivery(alert.pk) is True
        (message,) = queue.lrange("celery", 0, -1)
        assert b"molam_upgrades.tasks.send_alert" in message
    finally:
        queue.delete("celery")
        celery_app.conf.broker_url, celery_app.conf.task_always_eager = saved
