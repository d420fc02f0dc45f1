from __future__ import annotations

from celery import shared_task

from . import notices


@shared_task
def notify_selected_merchants() -> int:
    """Every minute: merchants a rollout stage newly selected get an upgrade notice."""
    return notices.notify_selected_merchants()
