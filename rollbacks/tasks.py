from __future__ import annotations

from celery import shared_task

from . import approvals


@shared_task
def expire_rollback_approvals() -> int:
    """Every minute: four-eyes requests and approvals past their time expire (never executed)."""
    return approvals.expire_approvals()
