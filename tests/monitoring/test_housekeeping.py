"""Housekeeping jobs: beat tasks and management commands, idempotent and safe to overlap."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from backups.models import PluginBackup
from backups.services import expire_backups
from molam_upgrades import housekeeping
from molam_upgrades.alerts import deliver_alert
from molam_upgrades.celery import app as celery_app
from molam_upgrades.models import Alert, IdempotencyRecord
from molam_upgrades.tasks import purge_idempotency_records, retry_unsent_alerts, send_alert
from tests.factories import BackupFactory

from .support import run_in_threads

db = pytest.mark.django_db


def _alert(*, age: timedelta, status: str = "pending", attempts: int = 0, key: str = "k") -> Alert:
    alert = Alert.objects.create(kind="rollback_failed", summary=f"alert {key}", dedup_key=key)
    Alert.objects.filter(pk=alert.pk).update(
        status=status, attempts=attempts, created_at=timezone.now() - age
    )
    alert.refresh_from_db()
    return alert


def _idempotency_record(key: str, age: timedelta) -> IdempotencyRecord:
    record = IdempotencyRecord.objects.create(
        principal="client:plugin-a", key=key, request_fingerprint="f" * 64, status_code=201, response_body={}
    )
    IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - age)
    return record


# --- Schedule -------------------------------------------------------------------------------


def test_beat_schedules_every_housekeeping_job():
    schedule = settings.CELERY_BEAT_SCHEDULE
    tasks = {entry["task"] for entry in schedule.values()}
    assert {
        "backups.tasks.expire_backups",
        "molam_upgrades.tasks.purge_idempotency_records",
        "molam_upgrades.tasks.retry_unsent_alerts",
        "rollouts.tasks.auto_check",
    } <= tasks
    assert schedule["retry-unsent-alerts"]["schedule"].total_seconds() == 60
    celery_app.loader.import_default_modules()
    for task in tasks:
        assert task in celery_app.tasks, task


# --- Backups --------------------------------------------------------------------------------


@db
def test_expire_backups_command_marks_backups_past_expiry_once():
    now = timezone.now()
    old = BackupFactory(backup_status="completed", expires_at=now - timedelta(minutes=1))
    fresh = BackupFactory(backup_status="completed", expires_at=now + timedelta(days=1))
    out = io.StringIO()
    call_command("expire_backups", stdout=out)
    assert "Expired 1 backup(s)." in out.getvalue()
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.backup_status == "expired" and fresh.backup_status == "completed"
    out = io.StringIO()
    call_command("expire_backups", stdout=out)
    assert "Expired 0 backup(s)." in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_expiries_expire_each_backup_once(uses_postgres):
    past = timezone.now() - timedelta(hours=1)
    for _i in range(50):
        BackupFactory(backup_status="completed", expires_at=past)
    results, errors = run_in_threads(expire_backups, expire_backups)
    assert errors == []
    assert sum(results) == 50
    assert PluginBackup.objects.exclude(backup_status="expired").count() == 0


# --- Idempotency records ----------------------------------------------------------------------


@db
def test_idempotency_records_older_than_seven_days_are_dropped():
    _idempotency_record("old", timedelta(days=7, minutes=1))
    _idempotency_record("recent", timedelta(days=6, hours=23))
    assert purge_idempotency_records.delay().get() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]
    out = io.StringIO()
    call_command("purge_idempotency_records", stdout=out)
    assert "Deleted 0 idempotency record(s)." in out.getvalue()


@db
def test_purge_works_through_a_backlog_in_batches(monkeypatch):
    monkeypatch.setattr(housekeeping, "PURGE_BATCH_SIZE", 7)
    for i in range(30):
        _idempotency_record(f"k{i}", timedelta(days=9))
    assert housekeeping.purge_idempotency_records() == 30
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_purges_delete_each_record_once(uses_postgres, monkeypatch):
    monkeypatch.setattr(housekeeping, "PURGE_BATCH_SIZE", 10)
    for i in range(60):
        _idempotency_record(f"k{i}", timedelta(days=8))
    _idempotency_record("recent", timedelta(days=1))
    results, errors = run_in_threads(
        housekeeping.purge_idempotency_records, housekeeping.purge_idempotency_records
    )
    assert errors == []
    assert sum(results) == 60
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]


# --- Unsent alerts ----------------------------------------------------------------------------


@db
def test_what_the_sweeper_considers_due():
    never_tried = _alert(age=timedelta(minutes=1), key="never-tried")
    _alert(age=timedelta(seconds=5), key="just-raised")  # its own task is about to send it
    lost_chain = _alert(age=timedelta(minutes=11), attempts=2, key="lost-chain")
    _alert(age=timedelta(minutes=3), attempts=2, key="chain-running")  # its retries may still run
    gave_up = _alert(age=timedelta(minutes=11), status="failed", attempts=6, key="failed-recently")
    _alert(age=timedelta(minutes=15), status="failed", attempts=7, key="backing-off")  # due at 20 min
    backed_off = _alert(age=timedelta(minutes=21), status="failed", attempts=7, key="backed-off")
    _alert(age=timedelta(days=2), status="failed", attempts=6, key="too-old")
    _alert(age=timedelta(hours=1), status="sent", attempts=1, key="sent")
    _alert(age=timedelta(hours=1), status="not_configured", key="not-configured")
    due = {a.alert_id: a for a in housekeeping.unsent_alerts_due()}
    assert set(due) == {never_tried.pk, lost_chain.pk, gave_up.pk, backed_off.pk}
    assert due[never_tried.pk].first_delivery and not due[lost_chain.pk].first_delivery
    assert due[gave_up.pk].attempts == 6


def test_retries_back_off_exponentially_for_a_day():
    assert housekeeping.retry_delay(1) == housekeeping.retry_delay(6) == timedelta(minutes=10)
    assert housekeeping.retry_delay(7) == timedelta(minutes=20)
    assert housekeeping.retry_delay(9) == timedelta(minutes=80)
    retries_in_a_day = [a for a in range(6, 30) if housekeeping.retry_delay(a) <= timedelta(days=1)]
    assert len(retries_in_a_day) == 8


@db
def test_the_beat_task_delivers_unsent_alerts_once(pagerduty):
    receiver = pagerduty()
    never_tried = _alert(age=timedelta(minutes=1), key="a")
    failed = _alert(age=timedelta(minutes=12), status="failed", attempts=6, key="b")
    assert retry_unsent_alerts.delay().get() == 2
    never_tried.refresh_from_db()
    failed.refresh_from_db()
    assert never_tried.status == "sent" and never_tried.attempts == 1
    assert failed.status == "sent" and failed.attempts == 7
    assert sorted(event["dedup_key"] for event in receiver.received) == ["a", "b"]
    assert retry_unsent_alerts.delay().get() == 0
    assert len(receiver.received) == 2


@db
def test_a_retry_is_a_single_attempt_and_a_failure_waits_for_the_next_step(pagerduty):
    receiver = pagerduty(statuses=[503] * 10)
    alert = _alert(age=timedelta(minutes=11), attempts=3, key="lost")
    assert housekeeping.retry_unsent_alerts() == 1
    alert.refresh_from_db()
    assert alert.status == "failed" and alert.attempts == 4 and "HTTP 503" in alert.last_error
    assert len(receiver.received) == 1


@db
def test_alerts_pending_for_more_than_a_day_are_given_up(pagerduty):
    pagerduty()
    alert = _alert(age=timedelta(days=1, minutes=1), attempts=2, key="ancient")
    assert housekeeping.retry_unsent_alerts() == 0
    alert.refresh_from_db()
    assert alert.status == "failed"


@db
def test_the_command_delivers_without_a_worker(pagerduty):
    receiver = pagerduty()
    _alert(age=timedelta(minutes=2), key="a")
    out = io.StringIO()
    call_command("retry_alerts", stdout=out)
    assert "Attempted delivery of 1 unsent alert(s)." in out.getvalue()
    assert [event["dedup_key"] for event in receiver.received] == ["a"]
    out = io.StringIO()
    call_command("retry_alerts", "--queue", stdout=out)
    assert "Queued delivery of 0 unsent alert(s)." in out.getvalue()


@db
def test_a_delivery_seen_with_a_stale_attempt_count_is_skipped(pagerduty):
    receiver = pagerduty()
    alert = _alert(age=timedelta(minutes=11), status="failed", attempts=6)
    assert deliver_alert(alert.pk, final_attempt=True, expected_attempts=5) == "failed"
    assert receiver.received == []
    assert deliver_alert(alert.pk, final_attempt=True, expected_attempts=6) == "sent"


@db
def test_the_legacy_task_name_still_sweeps(pagerduty):
    from molam_upgrades.tasks import send_pending_alerts

    pagerduty()
    _alert(age=timedelta(minutes=1))
    assert send_pending_alerts.delay().get() == 1


@pytest.mark.django_db(transaction=True)
def test_two_sweepers_at_once_send_each_alert_once(uses_postgres, pagerduty):
    # A slow receiver keeps each delivery in flight while the other sweeper reaches it.
    receiver = pagerduty(delay=0.2)
    keys = [f"alert-{i}" for i in range(6)]
    for i, key in enumerate(keys):
        if i % 2:
            _alert(age=timedelta(minutes=2), key=key)
        else:
            _alert(age=timedelta(minutes=30), status="failed", attempts=6, key=key)

    def sweep():
        return housekeeping.retry_unsent_alerts(dispatch=housekeeping.deliver_inline)

    results, errors = run_in_threads(sweep, sweep)
    assert errors == []
    assert sorted(event["dedup_key"] for event in receiver.received) == keys
    assert set(Alert.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db(transaction=True)
def test_a_sweeper_never_doubles_a_delivery_in_flight(uses_postgres, pagerduty):
    receiver = pagerduty(delay=0.5)
    alert = _alert(age=timedelta(minutes=11), attempts=2, key="in-flight")

    def task_retry():
        return send_alert.apply(args=[alert.pk]).get()

    def sweep():
        return housekeeping.retry_unsent_alerts(dispatch=housekeeping.deliver_inline)

    results, errors = run_in_threads(task_retry, sweep, sweep)
    assert errors == []
    assert [event["dedup_key"] for event in receiver.received] == ["in-flight"]
    alert.refresh_from_db()
    assert alert.status == "sent" and alert.attempts == 3


@db
def test_retrying_alerts_puts_the_unsent_back_to_pending_and_queues_each_after_commit(
    django_capture_on_commit_callbacks,
):
    failed = _alert(age=timedelta(days=2), status="failed", attempts=5, key="a")
    pending = _alert(age=timedelta(minutes=5), key="b")
    sent = _alert(age=timedelta(hours=1), status="sent", attempts=1, key="c")
    from molam_upgrades.alerts import retry_alerts

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert retry_alerts(Alert.objects.all()) == 2
    assert len(callbacks) == 2  # one delivery queued per retried alert, only once committed
    statuses = dict(Alert.objects.values_list("pk", "status"))
    assert statuses == {failed.pk: "pending", pending.pk: "pending", sent.pk: "sent"}
