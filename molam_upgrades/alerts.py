"""Raising alerts: stored first, delivered to PagerDuty by a Celery task after commit."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from .choices import AlertSeverity
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
    from .tasks import send_alert

    transaction.on_commit(lambda: send_alert.delay(alert.pk))
    return alert
