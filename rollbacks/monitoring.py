"""The rollbacks app's Prometheus metrics and demo data hooks (registered in ``apps.py``).

The history table is append-only (a PostgreSQL trigger refuses DELETE), so counts over it only
ever grow and are exposed as counters; sliding windows are gauges. ``read`` runs a few aggregate
queries (cached by the core between scrapes), ``collect`` turns their rows into metric families.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from prometheus_client.core import Metric

from molam_upgrades.exposition import CounterFamily, GaugeFamily, HistogramFamily

from .aggregates import DURATION_BOUNDS_MS, duration_column, rollback_windows
from .models import RollbackTotals

# Upper bounds (seconds) of the rollback-duration histogram: the aggregates' columns
# (``aggregates.DURATION_BOUNDS_MS``, finest around the seed's 3 s target).
DURATION_BUCKETS: tuple[float, ...] = tuple(ms / 1000 for ms in DURATION_BOUNDS_MS)
_HISTOGRAM_COLUMNS = ("duration_count", "duration_sum_ms", *(duration_column(b) for b in DURATION_BOUNDS_MS))
_TABLE = RollbackTotals._meta.db_table
_BY_TRIGGER = (
    f"SELECT plugin_name, rollback_trigger, completed, failed, initiated - completed FROM {_TABLE} "
    "ORDER BY plugin_name, rollback_trigger"
)
_BY_PLUGIN = (
    f"SELECT plugin_name, {', '.join(f'sum({c})::bigint' for c in _HISTOGRAM_COLUMNS)} FROM {_TABLE} "
    "GROUP BY plugin_name ORDER BY plugin_name"
)


def read(now: datetime) -> dict[str, list[tuple]]:
    """Merchant rollbacks from ``rollback_totals`` (maintained on write), as plain tuples.

    ``by_trigger``: (plugin, trigger, completed, failed, in progress). ``by_plugin``: (plugin,
    completed in the last 7 days, failed in the last 7 days, completed in the last 24 hours,
    duration count, duration sum in ms, then the histogram's cumulative bucket counts), the
    triggers summed by the database. Sira pause records (``sira_triggered``, nil merchant) are
    fleet events, not rollbacks; the stats API leaves them out too. The sliding windows (on
    ``created_at``, as in ``rollback_stats()``) come from ``aggregates.rollback_windows``.
    Tuples, not dicts: the snapshot is pickled into the shared cache, ~3,000 rows at 1,000 plugins.
    """
    # Plain SQL over the aggregate table: Django's per-value converters would cost more than
    # the queries for ~3,000 rows of 16 columns.
    with connection.cursor() as cur:
        cur.execute(_BY_TRIGGER)
        by_trigger = cur.fetchall()
        cur.execute(_BY_PLUGIN)
        histograms = cur.fetchall()
    windows = rollback_windows(now)
    by_plugin = []
    for plugin, *histogram in histograms:
        window = windows.get(plugin, {})
        by_plugin.append(
            (
                plugin,
                window.get("total_7d", 0),
                window.get("failed_7d", 0),
                window.get("last_24h", 0),
                *histogram,
            )
        )
    return {"by_trigger": by_trigger, "by_plugin": by_plugin}


def collect(data: dict[str, list[tuple]]) -> list[Metric]:
    by_trigger = ["plugin", "trigger"]
    total = CounterFamily(
        "molam_rollbacks",
        "Completed merchant rollbacks (Sira pause records excluded).",
        labels=by_trigger,
    )
    failed = CounterFamily(
        "molam_rollbacks_failed", "Completed merchant rollbacks that failed.", labels=by_trigger
    )
    in_progress = GaugeFamily(
        "molam_rollbacks_in_progress",
        "Rollbacks initiated and not yet completed (e.g. operator-forced ones waiting for the agent).",
        labels=by_trigger,
    )
    last_7d = GaugeFamily(
        "molam_rollbacks_last_7d", "Completed rollbacks created in the last 7 days.", labels=["plugin"]
    )
    failed_7d = GaugeFamily(
        "molam_rollbacks_failed_last_7d",
        "Failed rollbacks created in the last 7 days.",
        labels=["plugin"],
    )
    last_24h = GaugeFamily(
        "molam_rollbacks_last_24h",
        "Completed rollbacks created in the last 24 hours.",
        labels=["plugin"],
    )
    duration = HistogramFamily(
        "molam_rollback_duration_seconds",
        "Duration of completed rollbacks, as reported by the agent.",
        labels=["plugin"],
    )
    for plugin, trigger, completed, failed_count, running in data["by_trigger"]:
        labels = (plugin, trigger)
        total.add_metric(labels, completed)
        failed.add_metric(labels, failed_count)
        in_progress.add_metric(labels, running)
    bounds = [str(float(b)) for b in DURATION_BUCKETS]
    for plugin, week, week_failed, day, count, sum_ms, *cumulative in data["by_plugin"]:
        labels = (plugin,)
        last_7d.add_metric(labels, week)
        failed_7d.add_metric(labels, week_failed)
        last_24h.add_metric(labels, day)
        buckets = [*zip(bounds, cumulative, strict=True), ("+Inf", count)]
        duration.add_metric(labels, buckets, sum_value=sum_ms / 1000)
    return [total, failed, in_progress, last_7d, failed_7d, last_24h, duration]
