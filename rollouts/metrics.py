"""Rollout health: error rates (over the upgrade reports ``rollbacks`` owns) and velocity."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

# The error-rate queries have one owner, the app that owns the upgrade reports; rollouts (and
# apps built on rollouts) read them through this module.
from rollbacks.reports import (
    RolloutErrorRate,
    attach_error_rates,
    error_rate,
    rollout_error_rate,
    rollout_error_rates,
)

from .models import Rollout

__all__ = [
    "RolloutErrorRate",
    "attach_error_rates",
    "error_rate",
    "rollout_error_rate",
    "rollout_error_rates",
    "rollout_velocity_days",
]


def rollout_velocity_days(window_days: int = 90) -> float | None:
    """Median days from a rollout's first stage to 100 %, over rollouts that got there recently."""
    since = timezone.now() - timedelta(days=window_days)
    durations = sorted(
        (full - created).total_seconds() / 86400
        for created, full in Rollout.objects.filter(full_rollout_at__gte=since).values_list(
            "created_at", "full_rollout_at"
        )
    )
    if not durations:
        return None
    mid = len(durations) // 2
    median = durations[mid] if len(durations) % 2 else (durations[mid - 1] + durations[mid]) / 2
    return round(median, 2)
