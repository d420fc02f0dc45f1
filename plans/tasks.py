from __future__ import annotations

from celery import shared_task

from . import services


@shared_task
def advance_plans() -> dict:
    """Every minute (CELERY_BEAT_SCHEDULE): move each ready plan one stage, inside its windows."""
    return services.advance_plans().as_dict()
