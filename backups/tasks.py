from __future__ import annotations

from celery import shared_task

from .services import expire_backups as expire


@shared_task
def expire_backups() -> int:
    """Daily: mark backups past their 30-day retention as expired."""
    return expire()
