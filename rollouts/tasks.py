from __future__ import annotations

from celery import shared_task

from .services import auto_pause_failing_rollouts


@shared_task
def auto_check() -> dict:
    """Sira, every 5 minutes (CELERY_BEAT_SCHEDULE): pause failing rollouts."""
    paused = auto_pause_failing_rollouts(source="beat")
    return {"paused_count": len(paused), "paused_rollouts": [p.as_dict() for p in paused]}
