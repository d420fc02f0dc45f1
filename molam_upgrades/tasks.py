from __future__ import annotations

from celery import shared_task

from .alerts import MAX_ALERT_ATTEMPTS, AlertDeliveryError, deliver_alert


@shared_task(bind=True, max_retries=MAX_ALERT_ATTEMPTS - 1, acks_late=True)
def send_alert(
    self, alert_id: int, expected_attempts: int | None = None, single_attempt: bool = False
) -> str:
    """Deliver a stored alert; retries with exponential backoff (2, 4, 8 … s).

    ``expected_attempts`` (from the sweeper) only guards the first run: Celery replays the same
    arguments on retry, and by then the attempt counter has legitimately moved on.
    """
    final = single_attempt or self.request.retries >= self.max_retries
    expected = expected_attempts if self.request.retries == 0 else None
    try:
        return deliver_alert(alert_id, final_attempt=final, expected_attempts=expected)
    except AlertDeliveryError as exc:
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc


@shared_task
def retry_unsent_alerts() -> int:
    """Every minute: deliver alerts nobody is sending (never attempted, lost retries, failed < 1 day)."""
    from .housekeeping import retry_unsent_alerts as sweep

    return sweep()


@shared_task
def send_pending_alerts() -> int:
    """Former name of ``retry_unsent_alerts``, kept so messages already queued still run."""
    return retry_unsent_alerts()


@shared_task
def purge_idempotency_records() -> int:
    """Daily: drop Idempotency-Key records older than 7 days."""
    from .housekeeping import purge_idempotency_records as purge

    return purge()
