from __future__ import annotations

from celery import shared_task

from .services import MAX_ALERT_ATTEMPTS, AlertDeliveryError, deliver_alert


@shared_task(bind=True, max_retries=MAX_ALERT_ATTEMPTS - 1, acks_late=True)
def send_alert(self, alert_id: int) -> str:
    """Deliver a stored alert; retries with exponential backoff (2, 4, 8 … s)."""
    final = self.request.retries >= self.max_retries
    try:
        return deliver_alert(alert_id, final_attempt=final)
    except AlertDeliveryError as exc:
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc


@shared_task
def send_pending_alerts() -> int:
    """Queue delivery of alerts nobody is sending (e.g. raised by SQL auto_pause_failing_rollouts())."""
    from .services import pending_alert_ids

    ids = pending_alert_ids()
    for alert_id in ids:
        send_alert.delay(alert_id)
    return len(ids)
