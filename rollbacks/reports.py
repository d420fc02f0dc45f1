"""Upgrade reports seen from a rollout: error rate and merchants upgraded, in the database.

This app owns the upgrade reports, so the queries over them live here; ``rollouts`` calls
them for its rollouts (any queryset with ``plugin_name``, ``version`` and ``created_at``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from .choices import ERROR_STATUSES, UpgradeStatus
from .models import UpgradeLog


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
