"""Prometheus metrics read from the database.

A custom collector on its own registry: every scrape turns one cached *snapshot* of a few
aggregate queries into metric families, so a scrape costs the same handful of queries
whatever the size of the rollback history, and nothing at all while the snapshot is fresh
(``METRICS_CACHE_SECONDS``, 10 s by default, in the Django cache so every web worker shares it).

The history tables are append-only (a PostgreSQL trigger refuses DELETE), so counts over them
only ever grow and are exposed as counters (``_total``); sliding windows ("last 7 days") and
per-rollout values are gauges. Names follow the Prometheus conventions: ``molam_`` prefix,
base units (seconds, ratios 0–1), ``_total`` on counters, ``_timestamp_seconds`` on times.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

logger = logging.getLogger("molam.metrics")

CACHE_KEY = "metrics:snapshot:v1"
# A copy kept for an hour: when the database cannot be read, the scrape still shows the last
# known values (and molam_metrics_collect_success 0) instead of failing outright.
STALE_CACHE_KEY = "metrics:snapshot:v1:stale"
STALE_CACHE_SECONDS = 3600

# Upper bounds (seconds) of the rollback-duration histogram. The seed's target is an average
# under 3 s, so the buckets are finest around it; a rollback past 5 minutes is an outlier.
DURATION_BUCKETS: tuple[float, ...] = (0.5, 1, 2, 3, 5, 10, 30, 60, 120, 300)

ROLLOUT_LABELS = ["rollout_id", "plugin", "version"]


def cache_seconds() -> int:
    return int(getattr(settings, "METRICS_CACHE_SECONDS", 10))


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _bucket_key(bound: float) -> str:
    return f"le_{int(bound * 1000)}"


# --- Snapshot: the aggregate queries --------------------------------------------------------


def _rollback_rows(now: datetime) -> list[dict[str, Any]]:
    """Merchant rollbacks grouped by plugin and trigger: one query, buckets as conditional counts.

    Sira pause records (``sira_triggered``, nil merchant) are fleet events, not rollbacks; the
    stats API leaves them out too. Windows are on ``created_at``, as in ``rollback_stats()``.
    """
    from rollbacks.models import RollbackHistory

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


def _open_rollout_rows() -> list[dict[str, Any]]:
    """Active and paused rollouts with their report counts (one statement, see ``with_metrics``)."""
    from rollouts.choices import OPEN_STATES
    from rollouts.metrics import error_rate, with_metrics
    from rollouts.models import Rollout

    rows = (
        with_metrics(Rollout.objects.filter(status__in=OPEN_STATES))
        .order_by("pk")
        .values(
            "pk",
            "plugin_name",
            "version",
            "status",
            "rollout_strategy",
            "rollout_percentage",
            "error_threshold",
            "min_sample_size",
            "sira_monitoring",
            "auto_paused",
            "created_at",
            "reports_total",
            "reports_failed",
            "merchants_upgraded",
        )
    )
    return [
        {
            "rollout_id": str(row["pk"]),
            "plugin": row["plugin_name"],
            "version": row["version"],
            "status": row["status"],
            "strategy": row["rollout_strategy"],
            "cohort_ratio": float(row["rollout_percentage"]) / 100,
            "error_ratio": float(error_rate(row["reports_total"], row["reports_failed"])),
            "threshold_ratio": float(row["error_threshold"]),
            "min_sample_size": row["min_sample_size"],
            "sira_monitoring": row["sira_monitoring"],
            "auto_paused": row["auto_paused"],
            "created": row["created_at"].timestamp(),
            "upgrades": row["reports_total"],
            "upgrade_errors": row["reports_failed"],
            "merchants_upgraded": row["merchants_upgraded"],
        }
        for row in rows
    ]


def _rollout_status_rows() -> list[dict[str, Any]]:
    from rollouts.models import Rollout

    return list(
        Rollout.objects.values("status")
        .annotate(count=Count("pk"), auto_paused=Count("pk", filter=Q(auto_paused=True)))
        .order_by("status")
    )


def _sira_rows() -> list[dict[str, Any]]:
    """Sira check runs by source (beat, http, command, sql). A run counts once it finished."""
    from rollouts.models import AutoCheckRun

    rows = (
        AutoCheckRun.objects.values("source")
        .annotate(
            runs=Count("pk", filter=Q(finished_at__isnull=False)),
            paused=Sum("paused_count", filter=Q(finished_at__isnull=False)),
            last_finished=Max("finished_at"),
        )
        .order_by("source")
    )
    return [
        {
            "source": row["source"],
            "runs": row["runs"],
            "paused": int(row["paused"] or 0),
            "last_finished": _ts(row["last_finished"]),
        }
        for row in rows
    ]


def _alert_rows() -> list[dict[str, Any]]:
    from .choices import AlertStatus
    from .models import Alert

    rows = (
        Alert.objects.values("kind", "status")
        .annotate(
            count=Count("pk"),
            attempts=Sum("attempts"),
            oldest=Min("created_at", filter=Q(status=AlertStatus.PENDING)),
        )
        .order_by("kind", "status")
    )
    return [
        {
            "kind": row["kind"],
            "status": row["status"],
            "count": row["count"],
            "attempts": int(row["attempts"] or 0),
            "oldest_pending": _ts(row["oldest"]),
        }
        for row in rows
    ]


def read_snapshot(now: datetime | None = None) -> dict[str, Any]:
    """Every aggregate the collector exposes, as plain data (cacheable, picklable)."""
    now = now or timezone.now()
    started = time.perf_counter()
    snapshot = {
        "taken_at": now.timestamp(),
        "rollbacks": _rollback_rows(now),
        "rollouts": _open_rollout_rows(),
        "rollout_statuses": _rollout_status_rows(),
        "sira": _sira_rows(),
        "alerts": _alert_rows(),
    }
    snapshot["duration"] = time.perf_counter() - started
    return snapshot


def _cache_get(key: str) -> dict[str, Any] | None:
    try:
        return cache.get(key)
    except Exception:  # noqa: BLE001 - a cache outage must not break the scrape
        logger.warning("metrics cache unavailable", exc_info=True)
        return None


def _cache_set(key: str, value: dict[str, Any], timeout: int) -> None:
    try:
        cache.set(key, value, timeout)
    except Exception:  # noqa: BLE001
        logger.warning("metrics cache unavailable", exc_info=True)


def current_snapshot() -> tuple[dict[str, Any] | None, bool]:
    """(snapshot, fresh): the cached one while it is young, else read now; stale on DB errors."""
    snapshot = _cache_get(CACHE_KEY)
    if snapshot is not None:
        return snapshot, True
    try:
        snapshot = read_snapshot()
    except Exception:  # noqa: BLE001 - report the failure as a metric, keep serving
        logger.exception("metrics collection failed", extra={"event": "metrics_collect_failed"})
        return _cache_get(STALE_CACHE_KEY), False
    _cache_set(CACHE_KEY, snapshot, cache_seconds())
    _cache_set(STALE_CACHE_KEY, snapshot, STALE_CACHE_SECONDS)
    return snapshot, True


# --- Collector: snapshot → metric families --------------------------------------------------


@functools.cache
def _build_version() -> str:
    """The installed package's version, or pyproject.toml's when running from a checkout."""
    try:
        return metadata.version("molam-upgrades")
    except metadata.PackageNotFoundError:
        pass
    try:
        import tomllib

        with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


class MolamCollector(Collector):
    """Turns the database snapshot into Prometheus metric families on every scrape."""

    def collect(self) -> list[Metric]:
        snapshot, ok = current_snapshot()
        families: list[Metric] = [*self._meta(snapshot, ok)]
        if snapshot is not None:
            families += self._rollbacks(snapshot["rollbacks"])
            families += self._rollouts(snapshot["rollouts"], snapshot["rollout_statuses"])
            families += self._sira(snapshot["sira"])
            families += self._alerts(snapshot["alerts"])
        return families

    @staticmethod
    def _meta(snapshot: dict[str, Any] | None, ok: bool) -> list[Metric]:
        build = InfoMetricFamily("molam_build", "Version of the Molam safe-upgrade control plane.")
        build.add_metric([], {"version": _build_version()})
        success = GaugeMetricFamily(
            "molam_metrics_collect_success",
            "1 when the last read of the database aggregates succeeded, 0 when stale values are shown.",
            value=1 if ok else 0,
        )
        families: list[Metric] = [build, success]
        if snapshot is not None:
            families.append(
                GaugeMetricFamily(
                    "molam_metrics_collect_duration_seconds",
                    "Time the database aggregates behind this scrape took to read.",
                    value=snapshot["duration"],
                )
            )
            families.append(
                GaugeMetricFamily(
                    "molam_metrics_snapshot_timestamp_seconds",
                    "When the aggregates behind this scrape were read (they are cached briefly).",
                    value=snapshot["taken_at"],
                )
            )
        return families

    @staticmethod
    def _rollbacks(rows: list[dict[str, Any]]) -> list[Metric]:
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

    @staticmethod
    def _rollouts(rows: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> list[Metric]:
        from rollouts.choices import OPEN_STATES, RolloutStatus

        def gauge(name: str, doc: str, labels: list[str] = ROLLOUT_LABELS) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        info = InfoMetricFamily(
            "molam_rollout",
            "One series per active or paused rollout, carrying its descriptive labels.",
            labels=ROLLOUT_LABELS,
        )
        cohort = gauge(
            "molam_rollout_cohort_ratio",
            "Share of eligible merchants the rollout targets, 0–1 (0.25 is the 25 % stage).",
        )
        error = gauge(
            "molam_rollout_error_ratio",
            "Failed or rolled-back upgrade reports over all reports since the rollout started, 0–1.",
        )
        threshold = gauge(
            "molam_rollout_error_threshold_ratio", "Error ratio above which Sira pauses the rollout, 0–1."
        )
        min_sample = gauge(
            "molam_rollout_min_sample_size", "Upgrade reports needed before Sira judges the rollout."
        )
        created = gauge(
            "molam_rollout_created_timestamp_seconds", "When the rollout was created (unix time)."
        )
        status = gauge(
            "molam_rollout_status",
            "1 for the rollout's current status, 0 for the other open status.",
            labels=[*ROLLOUT_LABELS, "status"],
        )
        auto_paused = gauge("molam_rollout_auto_paused", "1 when Sira paused the rollout.")
        upgrades = CounterMetricFamily(
            "molam_rollout_upgrades",
            "Upgrade reports for the rollout's version since it started.",
            labels=ROLLOUT_LABELS,
        )
        upgrade_errors = CounterMetricFamily(
            "molam_rollout_upgrade_errors",
            "Failed or rolled-back upgrade reports for the rollout's version since it started.",
            labels=ROLLOUT_LABELS,
        )
        merchants = gauge(
            "molam_rollout_merchants_upgraded", "Distinct merchants that reported a successful upgrade."
        )
        for row in rows:
            labels = [row["rollout_id"], row["plugin"], row["version"]]
            info.add_metric(
                labels,
                {
                    "strategy": row["strategy"],
                    "sira_monitoring": "true" if row["sira_monitoring"] else "false",
                },
            )
            cohort.add_metric(labels, row["cohort_ratio"])
            error.add_metric(labels, row["error_ratio"])
            threshold.add_metric(labels, row["threshold_ratio"])
            min_sample.add_metric(labels, row["min_sample_size"])
            created.add_metric(labels, row["created"])
            for state in OPEN_STATES:
                status.add_metric([*labels, str(state)], 1 if row["status"] == state else 0)
            auto_paused.add_metric(labels, 1 if row["auto_paused"] else 0)
            upgrades.add_metric(labels, row["upgrades"])
            upgrade_errors.add_metric(labels, row["upgrade_errors"])
            merchants.add_metric(labels, row["merchants_upgraded"])

        by_status = GaugeMetricFamily("molam_rollouts", "Rollouts by status.", labels=["status"])
        counts = {row["status"]: row for row in statuses}
        # Every status is always present, so "no paused rollout" reads 0, not "no data".
        for state in RolloutStatus.values:
            by_status.add_metric([state], counts.get(state, {}).get("count", 0))
        paused_by_sira = GaugeMetricFamily(
            "molam_rollouts_paused_by_sira",
            "Rollouts currently paused by Sira (auto-pause), not yet resumed or closed.",
            value=counts.get(RolloutStatus.PAUSED, {}).get("auto_paused", 0),
        )
        return [
            info,
            cohort,
            error,
            threshold,
            min_sample,
            created,
            status,
            auto_paused,
            upgrades,
            upgrade_errors,
            merchants,
            by_status,
            paused_by_sira,
        ]

    @staticmethod
    def _sira(rows: list[dict[str, Any]]) -> list[Metric]:
        runs = CounterMetricFamily(
            "molam_sira_checks", "Finished Sira auto-pause checks, by source.", labels=["source"]
        )
        paused = CounterMetricFamily(
            "molam_sira_rollouts_paused",
            "Rollouts paused by Sira auto-pause checks, by source.",
            labels=["source"],
        )
        last = GaugeMetricFamily(
            "molam_sira_last_run_timestamp_seconds",
            "When a Sira auto-pause check last finished (unix time), by source.",
            labels=["source"],
        )
        for row in rows:
            runs.add_metric([row["source"]], row["runs"])
            paused.add_metric([row["source"]], row["paused"])
            if row["last_finished"] is not None:
                last.add_metric([row["source"]], row["last_finished"])
        return [runs, paused, last]

    @staticmethod
    def _alerts(rows: list[dict[str, Any]]) -> list[Metric]:
        from .choices import AlertStatus

        stored = GaugeMetricFamily(
            "molam_alerts",
            "Stored alerts by kind and delivery status (pending, sent, failed, not_configured).",
            labels=["kind", "status"],
        )
        sent = CounterMetricFamily(
            "molam_alerts_sent", "Alerts delivered to PagerDuty (a final state).", labels=["kind"]
        )
        attempts = CounterMetricFamily(
            "molam_alert_delivery_attempts",
            "PagerDuty delivery attempts, successful or not.",
            labels=["kind"],
        )
        oldest = GaugeMetricFamily(
            "molam_alert_oldest_pending_timestamp_seconds",
            "Creation time of the oldest alert still waiting for delivery (unix time).",
            labels=["kind"],
        )
        per_kind: dict[str, dict[str, Any]] = {}
        counts: dict[tuple[str, str], int] = {}
        for row in rows:
            counts[(row["kind"], row["status"])] = row["count"]
            kind = per_kind.setdefault(row["kind"], {"sent": 0, "attempts": 0, "oldest": None})
            kind["attempts"] += row["attempts"]
            if row["status"] == AlertStatus.SENT:
                kind["sent"] += row["count"]
            if row["oldest_pending"] is not None:
                kind["oldest"] = row["oldest_pending"]
        for name, values in per_kind.items():
            # Every status of a known kind is present, so "no failed alert" reads 0, not "no data".
            for status in AlertStatus.values:
                stored.add_metric([name, status], counts.get((name, status), 0))
            sent.add_metric([name], values["sent"])
            attempts.add_metric([name], values["attempts"])
            if values["oldest"] is not None:
                oldest.add_metric([name], values["oldest"])
        return [stored, sent, attempts, oldest]


def build_registry() -> CollectorRegistry:
    """A registry of its own: the global one would mix in whatever else the process imports."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MolamCollector())
    # Request count and latency per route, summed over every web worker (request_metrics.py).
    from .request_metrics import RequestMetricsCollector

    registry.register(RequestMetricsCollector())
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


REGISTRY = build_registry()
