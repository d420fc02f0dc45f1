from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(bind=True, max_retries=20, acks_late=True)
def deliver_notice(self, notice_id: str) -> str:
    """One attempt at a merchant notice; retried with exponential backoff on 5xx / network errors.

    The attempt budget is counted on the notice row (``NOTICE_MAX_ATTEMPTS``), not by Celery, so
    a sweeper run and a Celery retry share it.
    """
    try:
        return services.deliver_notice(notice_id)
    except services.NoticeRetry as exc:
        raise self.retry(exc=exc, countdown=exc.countdown) from exc


@shared_task
def send_due_notices() -> int:
    """Every minute: notices whose quiet period ended, lost retries, claims of dead workers."""
    ids = services.due_notice_ids()
    for notice_id in ids:
        deliver_notice.delay(str(notice_id))
    return len(ids)
