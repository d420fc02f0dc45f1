"""Alert delivery (PagerDuty Events API v2)."""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from .choices import AlertStatus
from .models import Alert

logger = logging.getLogger("molam.alerts")

MAX_ALERT_ATTEMPTS = 6


class AlertDeliveryError(Exception):
    """The receiver refused or could not be reached; the task retries with backoff."""


def deliver_alert(alert_id: int, *, final_attempt: bool = False) -> str:
    """Send one stored alert. Returns its new status.

    The attempt is claimed with a conditional UPDATE, so two workers running the same alert
    cannot both send it.
    """
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None or alert.status in (AlertStatus.SENT, AlertStatus.NOT_CONFIGURED):
        return alert.status if alert else "missing"
    if not settings.PAGERDUTY_EVENTS_URL:
        Alert.objects.filter(pk=alert_id, status=AlertStatus.PENDING).update(
            status=AlertStatus.NOT_CONFIGURED
        )
        logger.info(
            "alert not sent (PAGERDUTY_EVENTS_URL not set): %s",
            alert.summary,
            extra={"event": "alert_not_configured", "alert_id": alert_id},
        )
        return AlertStatus.NOT_CONFIGURED
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
            logger.info("alert sent: %s", alert.summary, extra={"event": "alert_sent", "alert_id": alert_id})
            return AlertStatus.SENT
        error = f"HTTP {response.status_code}: {response.text[:500]}"
    status = AlertStatus.FAILED if final_attempt else AlertStatus.PENDING
    Alert.objects.filter(pk=alert_id).update(status=status, last_error=error)
    logger.error("alert delivery failed: %s", error, extra={"event": "alert_failed", "alert_id": alert_id})
    if not final_attempt:
        raise AlertDeliveryError(error)
    return status


def pending_alert_ids(older_than_s: int = 30) -> list[int]:
    """Alerts still waiting for delivery: written by SQL, or whose queued task was lost."""
    from datetime import timedelta

    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    return list(
        Alert.objects.filter(status=AlertStatus.PENDING, attempts=0, created_at__lte=cutoff).values_list(
            "pk", flat=True
        )[:500]
    )
