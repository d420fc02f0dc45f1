"""The rollbacks app's Prometheus metrics and demo data hooks (registered in ``apps.py``).

The history table is append-only (a PostgreSQL trigger refuses DELETE), so counts over it only
ever grow and are exposed as counters; sliding windows are gauges. ``read`` runs one aggregate
query (cached by the core between scrapes), ``collect`` turns its rows into metric families.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from .aggregates import DURATION_BOUNDS_MS, duration_column, rollback_totals_by_trigger, rollback_windows

# Upper bounds (seconds) of the rollback-duration histogram: the aggregates' columns
# (``aggregates.DURATION_BOUNDS_MS``, finest around the seed's 3 s target).
DURATION_BUCKETS: tuple[float, ...] = tuple(ms / 1000 for ms in DURATION_BOUNDS_MS)


def _bucket_key(bound: float) -> str:
    return f"le_{int(bound * 1000)}"


def read(now: datetime) -> list[dict[str, Any]]:
    """Merchant rollbacks by plugin and trigger, from ``rollback_totals`` (maintained on write).

    Sira pause records (``sira_triggered``, nil merchant) are fleet events, not rollbacks; the
    stats API leaves them out too. The sliding windows (on ``created_at``, as in
    ``rollback_stats()``) come from ``aggregates.rollback_windows``.
    """
    windows = rollback_windows(now)
    rows = []
    for totals in rollback_totals_by_trigger():
        # Windows are per plugin: carried on the plugin's first row, summed per plugin by collect().
        window = windows.pop(totals["plugin_name"], {})
        row = {
            "plugin_name": totals["plugin_name"],
            "rollback_trigger": totals["rollback_trigger"],
            "total": totals["completed"],
            "failed": totals["failed"],
            "total_7d": window.get("total_7d", 0),
            "failed_7d": window.get("failed_7d", 0),
            "last_24h": window.get("last_24h", 0),
            "in_progress": totals["initiated"] - totals["completed"],
            "duration_count": totals["duration_count"],
            "duration_sum_ms": totals["duration_sum_ms"],
        }
        for bound in DURATION_BOUNDS_MS:
            row[f"le_{bound}"] = totals[duration_column(bound)]
        rows.append(row)
    return rows


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
