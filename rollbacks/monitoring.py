"""The rollbacks app's Prometheus metrics and demo data hooks (registered in ``apps.py``).

The history table is append-only (a PostgreSQL trigger refuses DELETE), so counts over it only
ever grow and are exposed as counters; sliding windows are gauges. ``read`` runs one aggregate
query (cached by the core between scrapes), ``collect`` turns its rows into metric families.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from .models import RollbackHistory

# Upper bounds (seconds) of the rollback-duration histogram. The seed's target is an average
# under 3 s, so the buckets are finest around it; a rollback past 5 minutes is an outlier.
DURATION_BUCKETS: tuple[float, ...] = (0.5, 1, 2, 3, 5, 10, 30, 60, 120, 300)


def _bucket_key(bound: float) -> str:
    return f"le_{int(bound * 1000)}"


def read(now: datetime) -> list[dict[str, Any]]:
    """Merchant rollbacks grouped by plugin and trigger: one query, buckets as conditional counts.

    Sira pause records (``sira_triggered``, nil merchant) are fleet events, not rollbacks; the
    stats API leaves them out too. Windows are on ``created_at``, as in ``rollback_stats()``.
    """
    done = Q(completed_at__isnull=False)
    timed = done & Q(duration_ms__isnull=False)
    week = Q(created_at__gte=now - timedelta(days=7))
    aggregates: dict[str, Any] = {
        "total": Count("pk", filter=done),
        "failed": Count("pk", filter=done & Q(success=False)),
        "total_7d": Count("pk", filter=done & week),
        "failed_7d": Count("pk", filter=done & week & Q(success=False)),
        "last_24h": Count("pk", filter=done & Q(created_at__gte=now - timedelta(hours=24))),
        "in_progress": Count("pk", filter=Q(completed_at__isnull=True)),
        "duration_count": Count("pk", filter=timed),
        "duration_sum_ms": Sum("duration_ms", filter=timed),
    }
    for bound in DURATION_BUCKETS:
        aggregates[_bucket_key(bound)] = Count("pk", filter=timed & Q(duration_ms__lte=bound * 1000))
    rows = (
        RollbackHistory.objects.filter(sira_triggered=False)
        .values("plugin_name", "rollback_trigger")
        .annotate(**aggregates)
        .order_by("plugin_name", "rollback_trigger")
    )
    return [{**row, "duration_sum_ms": int(row["duration_sum_ms"] or 0)} for row in rows]


def collect(rows: list[dict[str, Any]]) -> list[Metric]:
    by_trigger = ["plugin", "trigger"]
    total = CounterMetricFamily(
        "molam_rollbacks",
        "Completed merchant rollbacks (Sira pause records excluded).",
        labels=by_trigger,
    )
    failed = CounterMetricFamily(
        "molam_rollbacks_failed", "Completed merchant rollbacks that failed.", labels=by_trigger
    )
    in_progress = GaugeMetricFamily(
        "molam_rollbacks_in_progress",
        "Rollbacks initiated and not yet completed (e.g. operator-forced ones waiting for the agent).",
        labels=by_trigger,
    )
    last_7d = GaugeMetricFamily(
        "molam_rollbacks_last_7d", "Completed rollbacks created in the last 7 days.", labels=["plugin"]
    )
    failed_7d = GaugeMetricFamily(
        "molam_rollbacks_failed_last_7d",
        "Failed rollbacks created in the last 7 days.",
        labels=["plugin"],
    )
    last_24h = GaugeMetricFamily(
        "molam_rollbacks_last_24h",
        "Completed rollbacks created in the last 24 hours.",
        labels=["plugin"],
    )
    duration = HistogramMetricFamily(
        "molam_rollback_duration_seconds",
        "Duration of completed rollbacks, as reported by the agent.",
        labels=["plugin"],
    )
    per_plugin: dict[str, dict[str, int]] = {}
    for row in rows:
        labels = [row["plugin_name"], row["rollback_trigger"]]
        total.add_metric(labels, row["total"])
        failed.add_metric(labels, row["failed"])
        in_progress.add_metric(labels, row["in_progress"])
        plugin = per_plugin.setdefault(row["plugin_name"], {})
        for key, value in row.items():
            if isinstance(value, int) and not isinstance(value, bool):
                plugin[key] = plugin.get(key, 0) + value
    for name, sums in per_plugin.items():
        last_7d.add_metric([name], sums["total_7d"])
        failed_7d.add_metric([name], sums["failed_7d"])
        last_24h.add_metric([name], sums["last_24h"])
        buckets = [(str(float(b)), sums[_bucket_key(b)]) for b in DURATION_BUCKETS]
        buckets.append(("+Inf", sums["duration_count"]))
        duration.add_metric([name], buckets, sum_value=sums["duration_sum_ms"] / 1000)
    return [total, failed, in_progress, last_7d, failed_7d, last_24h, duration]
