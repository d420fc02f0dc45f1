"""Prometheus metrics read from the database.

A custom collector on its own registry: every scrape turns one cached *snapshot* of a few
aggregate queries into metric families. The core knows only its own tables (alerts); each app
contributes its queries and families through ``molam_upgrades.registry.register_metrics``
(``rollbacks/monitoring.py``, ``rollouts/monitoring.py``, …), read into the same snapshot. So
a scrape costs the same handful of queries whatever the size of the history, and nothing at all while the snapshot is fresh
(``METRICS_CACHE_SECONDS``, 10 s by default, in the Django cache so every web worker shares it).

Rendering: the families with a series per plugin or per rollout (``molam_upgrades.exposition``)
write their text directly, the same bytes as prometheus_client's encoders at a twentieth of the
cost (1,000 plugins are ~25,000 lines), and this process keeps the families of the last snapshot
with their text, so a scrape while the snapshot is fresh renders nothing again.

Counts over append-only tables are counters (``_total``); sliding windows ("last 7 days") and
per-object values are gauges. Names follow the Prometheus conventions: ``molam_`` prefix,
base units (seconds, ratios 0–1), ``_total`` on counters, ``_timestamp_seconds`` on times.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from . import registry
from .exposition import CounterFamily, GaugeFamily, render

logger = logging.getLogger("molam.metrics")

# v3: the rollbacks app's rows are tuples (a cached v2 snapshot would not read as one).
CACHE_KEY = "metrics:snapshot:v3"
# A copy kept for an hour: when the database cannot be read, the scrape still shows the last
# known values (and molam_metrics_collect_success 0) instead of failing outright.
STALE_CACHE_KEY = "metrics:snapshot:v3:stale"
STALE_CACHE_SECONDS = 3600


def cache_seconds() -> int:
    return int(getattr(settings, "METRICS_CACHE_SECONDS", 10))


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


# --- Snapshot: the aggregate queries --------------------------------------------------------


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
        "id": uuid.uuid4().hex,  # what this process's rendered families are memoised by
        "taken_at": now.timestamp(),
        "alerts": _alert_rows(),
        "apps": {source.name: source.read(now) for source in registry.metrics_sources()},
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


# When this process last wrote the stale copy (monotonic seconds). The copy is for database
# outages, so a minute-old one does; writing it on every read would pickle and send the whole
# snapshot on each scrape when the cache is short or off.
_stale_written_at: float | None = None
STALE_WRITE_INTERVAL = 60


def current_snapshot() -> tuple[dict[str, Any] | None, bool]:
    """(snapshot, fresh): the cached one while it is young, else read now; stale on DB errors."""
    global _stale_written_at
    seconds = cache_seconds()
    if seconds > 0:
        snapshot = _cache_get(CACHE_KEY)
        if snapshot is not None:
            return snapshot, True
    try:
        snapshot = read_snapshot()
    except Exception:  # noqa: BLE001 - report the failure as a metric, keep serving
        logger.exception("metrics collection failed", extra={"event": "metrics_collect_failed"})
        return _cache_get(STALE_CACHE_KEY), False
    if seconds > 0:
        _cache_set(CACHE_KEY, snapshot, seconds)
    now = time.monotonic()
    if seconds > 0 or _stale_written_at is None or now - _stale_written_at >= STALE_WRITE_INTERVAL:
        _cache_set(STALE_CACHE_KEY, snapshot, STALE_CACHE_SECONDS)
        _stale_written_at = now
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


# Per process: the families built from the last snapshot seen, by the snapshot's id. While the
# shared cache serves that snapshot, a scrape reuses them, and with them their rendered text
# (``exposition.py`` keeps it per format): a fresh scrape costs a cache read, not a rendering.
_families_memo: tuple[str, list[Metric]] | None = None


def snapshot_families(snapshot: dict[str, Any]) -> list[Metric]:
    """Every app's families and the alerts', from one snapshot (no database access)."""
    global _families_memo
    memo = _families_memo
    snapshot_id = snapshot.get("id")
    if memo is not None and snapshot_id is not None and memo[0] == snapshot_id:
        return memo[1]
    families: list[Metric] = []
    for source in registry.metrics_sources():
        if source.name in snapshot["apps"]:  # a cached snapshot may predate an app
            families += source.collect(snapshot["apps"][source.name])
    families += MolamCollector._alerts(snapshot["alerts"])
    if snapshot_id is not None:
        _families_memo = (snapshot_id, families)
    return families


class MolamCollector(Collector):
    """Turns the database snapshot into Prometheus metric families on every scrape."""

    def collect(self) -> list[Metric]:
        snapshot, ok = current_snapshot()
        families: list[Metric] = [*self._meta(snapshot, ok)]
        if snapshot is not None:
            families += snapshot_families(snapshot)
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
    def _alerts(rows: list[dict[str, Any]]) -> list[Metric]:
        from .choices import AlertStatus

        stored = GaugeFamily(
            "molam_alerts",
            "Stored alerts by kind and delivery status (pending, sent, failed, not_configured).",
            labels=["kind", "status"],
        )
        sent = CounterFamily(
            "molam_alerts_sent", "Alerts delivered to PagerDuty (a final state).", labels=["kind"]
        )
        attempts = CounterFamily(
            "molam_alert_delivery_attempts",
            "PagerDuty delivery attempts, successful or not.",
            labels=["kind"],
        )
        oldest = GaugeFamily(
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


def exposition(accept_header: str) -> tuple[bytes, str]:
    """The ``/metrics`` body in the format the scraper accepts (text 0.0.4 or OpenMetrics, as
    prometheus_client negotiates it) and its content type.

    The per-plugin and per-rollout families are written by ``exposition.render`` (the same bytes
    as prometheus_client's encoders, about 20 times faster); the rest (build info, request and
    process metrics) by the encoder prometheus_client picked.
    """
    encoder, content_type = choose_encoder(accept_header)
    openmetrics = content_type.startswith("application/openmetrics-text")
    return render(REGISTRY.collect(), encoder, openmetrics), content_type
