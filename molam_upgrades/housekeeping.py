"""Periodic housekeeping: idempotency-record retention and re-sending unsent alerts.

Each job is idempotent and safe to run twice at once (beat firing while an operator runs the
management command): deletes are keyed by id, and every alert delivery is claimed under a row
lock with a compare-and-swap on its attempt counter (``deliver_alert``), so an alert is never
posted by two workers at the same time and never again once sent. Backup retention lives in
``backups.services.expire_backups``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from .alerts import MAX_ALERT_ATTEMPTS
from .choices import AlertStatus
from .models import Alert, IdempotencyRecord

logger = logging.getLogger("molam.housekeeping")

# An Idempotency-Key protects against a client retrying the same request; a week covers any
# sane retry loop (and a long weekend outage) while keeping the table small.
IDEMPOTENCY_RETENTION = timedelta(days=7)
PURGE_BATCH_SIZE = 5000

# A new alert's own task normally delivers it within seconds of the commit.
FIRST_DELIVERY_GRACE = timedelta(seconds=30)
# Longer than a whole retry chain of ``send_alert`` (2+4+8+16+32 s of backoff plus six HTTP
# timeouts): an alert still pending with attempts this long after creation lost its chain.
RETRY_AFTER = timedelta(minutes=10)
# After that, retries back off exponentially (10, 20, 40 … minutes of age) for one day; a page
# about something older than a day is noise, and the alert stays visible as ``failed``.
RETRY_WINDOW = timedelta(days=1)
SWEEP_LIMIT = 200


def purge_idempotency_records(
    now: datetime | None = None, *, older_than: timedelta = IDEMPOTENCY_RETENTION
) -> int:
    """Delete idempotency records older than a week; returns how many this call deleted.

    Deletes in batches of ids so a large backlog never holds one long lock on the table; two
    concurrent runs may pick the same batch, and the second simply deletes nothing.
    """
    cutoff = (now or timezone.now()) - older_than
    deleted = 0
    while True:
        batch = list(
            IdempotencyRecord.objects.filter(created_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:PURGE_BATCH_SIZE]
        )
        if not batch:
            break
        count, _ = IdempotencyRecord.objects.filter(pk__in=batch).delete()
        deleted += count
        if len(batch) < PURGE_BATCH_SIZE:
            break
    if deleted:
        logger.info(
            "purged %d idempotency records older than %s",
            deleted,
            cutoff.isoformat(),
            extra={"event": "idempotency_records_purged", "count": deleted},
        )
    return deleted


@dataclass(frozen=True)
class DueAlert:
    """An alert the sweeper should (re)send, with the attempt count it was seen with."""

    alert_id: int
    attempts: int
    first_delivery: bool


def retry_delay(attempts: int) -> timedelta:
    """Age an alert must reach before the sweeper retries it after ``attempts`` attempts."""
    return RETRY_AFTER * 2 ** max(0, attempts - MAX_ALERT_ATTEMPTS)


def unsent_alerts_due(now: datetime | None = None, *, limit: int = SWEEP_LIMIT) -> list[DueAlert]:
    """Alerts nobody is delivering: never attempted, stuck pending after a lost retry, or failed.

    Never-attempted ones (raised by SQL ``auto_pause_failing_rollouts()``, or whose task was
    lost) are always due after a short grace. Retried ones are due on an exponential schedule
    over their age, so a receiver that is down for hours is not hammered.
    """
    now = now or timezone.now()
    rows = (
        Alert.objects.filter(
            Q(status=AlertStatus.PENDING, attempts=0, created_at__lte=now - FIRST_DELIVERY_GRACE)
            | Q(
                status__in=[AlertStatus.PENDING, AlertStatus.FAILED],
                attempts__gt=0,
                created_at__lte=now - RETRY_AFTER,
                created_at__gte=now - RETRY_WINDOW,
            )
        )
        .order_by("created_at")
        .values_list("pk", "attempts", "created_at")[: limit * 4]
    )
    due = [
        DueAlert(pk, attempts, attempts == 0)
        for pk, attempts, created_at in rows
        if attempts == 0 or now - created_at >= retry_delay(attempts)
    ]
    return due[:limit]


def give_up_stale_alerts(now: datetime | None = None) -> int:
    """Mark alerts still pending after a day of retries as failed (a conditional UPDATE)."""
    now = now or timezone.now()
    count = Alert.objects.filter(
        status=AlertStatus.PENDING, attempts__gt=0, created_at__lt=now - RETRY_WINDOW
    ).update(status=AlertStatus.FAILED)
    if count:
        logger.warning(
            "gave up delivering %d alerts after a day",
            count,
            extra={"event": "alerts_given_up", "count": count},
        )
    return count


# dispatch(alert_id, expected_attempts, first_delivery): queue a task or deliver inline.
Dispatch = Callable[[int, int, bool], object]


def queue_delivery(alert_id: int, expected_attempts: int, first_delivery: bool) -> object:
    """Queue ``send_alert``: a first delivery gets the full retry chain, a retry one attempt."""
    from .tasks import send_alert

    return send_alert.delay(alert_id, expected_attempts=expected_attempts, single_attempt=not first_delivery)


def deliver_inline(alert_id: int, expected_attempts: int, first_delivery: bool) -> object:
    """Deliver now, one attempt (for the management command, when the worker may be down)."""
    from .alerts import deliver_alert

    return deliver_alert(alert_id, final_attempt=True, expected_attempts=expected_attempts)


def retry_unsent_alerts(now: datetime | None = None, *, dispatch: Dispatch = queue_delivery) -> int:
    """Re-send what is due (see ``unsent_alerts_due``); returns how many were dispatched."""
    now = now or timezone.now()
    give_up_stale_alerts(now)
    due = unsent_alerts_due(now)
    for alert in due:
        dispatch(alert.alert_id, alert.attempts, alert.first_delivery)
    if due:
        logger.info(
            "dispatched %d unsent alerts",
            len(due),
            extra={"event": "alerts_retried", "count": len(due), "alert_ids": [a.alert_id for a in due]},
        )
    return len(due)
