"""Rollout health computed in the database: error rate and merchants upgraded."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from rollbacks.choices import ERROR_STATUSES, UpgradeStatus
from rollbacks.models import UpgradeLog


def _reports_for(rollout_ref=OuterRef):
    """Upgrade reports that count for a rollout: its plugin and version, since it was created."""
    return UpgradeLog.objects.filter(
        plugin_name=rollout_ref("plugin_name"),
        to_version=rollout_ref("version"),
        created_at__gte=rollout_ref("created_at"),
    )


def _count(queryset, expression) -> Coalesce:
    return Coalesce(
        Subquery(
            queryset.order_by().values("plugin_name").annotate(n=expression).values("n")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


def with_error_counts(queryset: QuerySet) -> QuerySet:
    """Annotate rollouts with ``reports_total`` and ``reports_failed`` (what the error rate needs).

    Counts only columns of the covering index, so PostgreSQL answers with index-only scans.
    """
    reports = _reports_for()
    return queryset.annotate(
        reports_total=_count(reports, Count("*")),
        reports_failed=_count(reports, Count("status", filter=Q(status__in=ERROR_STATUSES))),
    )


def with_metrics(queryset: QuerySet) -> QuerySet:
    """Error counts plus ``merchants_upgraded``, in one SQL statement (no rows loaded in Python)."""
    reports = _reports_for()
    return with_error_counts(queryset).annotate(
        merchants_upgraded=_count(
            reports.filter(status=UpgradeStatus.SUCCESS), Count("merchant_id", distinct=True)
        ),
    )


def error_rate(total: int, errors: int) -> Decimal:
    """(failed + rolled_back) / total, 0 when there are no reports; 4 decimals."""
    if not total:
        return Decimal("0.0000")
    return (Decimal(errors) / Decimal(total)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def rollout_velocity_days(window_days: int = 90) -> float | None:
    """Median days from a rollout's first stage to 100 %, over rollouts that got there recently."""
    from datetime import timedelta

    from django.utils import timezone

    from .models import Rollout

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
