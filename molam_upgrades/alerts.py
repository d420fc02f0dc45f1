"""The alert lifecycle, in one module: raise (store), enqueue, deliver, and what retries need.

An alert is stored first (``raise_alert``, inside the caller's transaction), then queued for
delivery once that transaction commits. Queuing never fails the request that raised it: when
the broker is unreachable the alert simply stays ``pending`` and the sweeper
(``housekeeping.retry_unsent_alerts``, every minute) sends it later. ``deliver_alert`` posts
one stored alert to PagerDuty (Events API v2) under a row lock, so it is never paged twice.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .choices import AlertSeverity, AlertStatus
from .models import Alert

logger = logging.getLogger("molam.alerts")


def raise_alert(
    *,
    kind: str,
    summary: str,
    dedup_key: str,
    severity: str = AlertSeverity.ERROR,
    details: dict[str, Any] | None = None,
) -> Alert:
    """Store an alert and queue its delivery once the surrounding transaction commits."""
    alert = Alert.objects.create(
        kind=kind,
        summary=summary,
        dedup_key=dedup_key,
        severity=severity,
        source=settings.ALERT_SOURCE,
        custom_details=details or {},
    )
    logger.warning(
        "alert raised: %s",
        summary,
        extra={"event": "alert_raised", "alert_id": alert.pk, "kind": kind},
    )
    transaction.on_commit(lambda: enqueue_delivery(alert.pk))
    return alert


def retry_alerts(alerts) -> int:
    """Put the unsent alerts of ``alerts`` (a queryset) back to pending and queue each once the
    transaction commits (the admin's "retry delivery"); returns how many."""
    ids = list(alerts.exclude(status=AlertStatus.SENT).values_list("pk", flat=True))
    Alert.objects.filter(pk__in=ids).update(status=AlertStatus.PENDING)
    for alert_id in ids:
        transaction.on_commit(lambda alert_id=alert_id: enqueue_delivery(alert_id))
    return len(ids)


def enqueue_delivery(alert_id: int) -> bool:
    """Queue ``send_alert`` for a stored alert; False (and the alert stays pending) when the broker is down.

    One publish attempt, no retry loop: the request that raised the alert must not wait on a
    dead broker, and the sweeper re-sends pending alerts anyway.
    """
    from .celery import app
    from .tasks import send_alert

    try:
        if app.conf.task_always_eager:
            send_alert.apply_async((alert_id,))
        else:
            # A connection of its own, tried once (kombu would otherwise retry for seconds):
            # refused at once, or bounded by broker_connection_timeout when the host is silent.
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=0)
                send_alert.apply_async((alert_id,), connection=connection, retry=False)
    except Exception as exc:  # noqa: BLE001 - any broker failure: keep the alert pending, never fail the caller
        logger.error(
            "alert %s not queued (broker unavailable: %s); the retry sweeper will send it",
            alert_id,
            f"{type(exc).__name__}: {exc}",
            extra={"event": "alert_enqueue_failed", "alert_id": alert_id},
        )
        return False
    return True


MAX_ALERT_ATTEMPTS = 6


class AlertDeliveryError(Exception):
    """The receiver refused or could not be reached; the task retries with backoff."""


IN_FLIGHT = "in_flight"


def deliver_alert(alert_id: int, *, final_attempt: bool = False, expected_attempts: int | None = None) -> str:
    """Send one stored alert. Returns its new status (or ``in_flight`` / ``missing``).

    The row is locked (``SELECT … FOR UPDATE SKIP LOCKED``) from the claim until the outcome
    is stored, so two deliveries of one alert never overlap: the second finds it locked and
    backs off, or finds it sent. The lock is held across one HTTP call bounded by
    ``ALERT_HTTP_TIMEOUT``: an acceptable price on this low-volume path for never paging twice.
    ``expected_attempts`` turns the claim into a compare-and-swap for sweepers: when another
    attempt happened since the caller looked, this one is skipped.
    """
    if not settings.PAGERDUTY_EVENTS_URL:
        alert = Alert.objects.filter(pk=alert_id).first()
        if alert is None or alert.status in (AlertStatus.SENT, AlertStatus.NOT_CONFIGURED):
            return alert.status if alert else "missing"
        Alert.objects.filter(pk=alert_id, status=AlertStatus.PENDING).update(
            status=AlertStatus.NOT_CONFIGURED
        )
        logger.info(
            "alert not sent (PAGERDUTY_EVENTS_URL not set): %s",
            alert.summary,
            extra={"event": "alert_not_configured", "alert_id": alert_id},
        )
        return AlertStatus.NOT_CONFIGURED
    error = ""
    with transaction.atomic():
        alert = Alert.objects.select_for_update(skip_locked=True).filter(pk=alert_id).first()
        if alert is None:
            return IN_FLIGHT if Alert.objects.filter(pk=alert_id).exists() else "missing"
        if alert.status in (AlertStatus.SENT, AlertStatus.NOT_CONFIGURED):
            return alert.status
        if expected_attempts is not None and alert.attempts != expected_attempts:
            return alert.status  # another delivery attempted it since the caller looked
        # The row lock is a no-op on SQLite; there the conditional UPDATE is what claims the attempt.
        claimed = (
            Alert.objects.filter(pk=alert_id, attempts=alert.attempts)
            .exclude(status=AlertStatus.SENT)
            .update(attempts=F("attempts") + 1)
        )
        if not claimed:
            return Alert.objects.get(pk=alert_id).status
        try:
            response = requests.post(
                settings.PAGERDUTY_EVENTS_URL,
                json=alert.pagerduty_payload(),
                timeout=settings.ALERT_HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= response.status_code < 300:
                Alert.objects.filter(pk=alert_id).update(
                    status=AlertStatus.SENT, sent_at=timezone.now(), last_error=""
                )
            else:
                error = f"HTTP {response.status_code}: {response.text[:500]}"
        if error:
            status = AlertStatus.FAILED if final_attempt else AlertStatus.PENDING
            Alert.objects.filter(pk=alert_id).update(status=status, last_error=error)
    # Logged and raised after the commit, so the stored outcome survives the retry exception.
    if not error:
        logger.info(
            "alert sent: %s",
            alert.summary,
            extra={
                "event": "alert_sent",
                "alert_id": alert_id,
                "kind": alert.kind,
                "attempt": alert.attempts + 1,
            },
        )
        return AlertStatus.SENT
    logger.error(
        "alert delivery failed: %s",
        error,
        extra={
            "event": "alert_failed",
            "alert_id": alert_id,
            "kind": alert.kind,
            "attempt": alert.attempts + 1,
            "final": final_attempt,
        },
    )
    if not final_attempt:
        raise AlertDeliveryError(error)
    return status
