"""The rollouts app's Prometheus metrics and the Sira readiness check (registered in ``apps.py``).

``read`` runs the aggregate queries (cached by the core between scrapes); ``collect`` turns
them into metric families. Per-rollout values are gauges; report counts are counters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone
from prometheus_client.core import Metric

from molam_upgrades.exposition import CounterFamily, GaugeFamily, InfoFamily
from molam_upgrades.registry import ReadinessResult

from .choices import OPEN_STATES, RolloutStatus
from .metrics import rollout_error_rates
from .models import AutoCheckRun, Rollout

logger = logging.getLogger("molam.health")

ROLLOUT_LABELS = ["rollout_id", "plugin", "version"]


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def read(now: datetime) -> dict[str, Any]:
    return {"rollouts": _open_rollout_rows(), "statuses": _rollout_status_rows(), "sira": _sira_rows()}


def collect(data: dict[str, Any]) -> list[Metric]:
    return [*_rollouts(data["rollouts"], data["statuses"]), *_sira(data["sira"])]


def _open_rollout_rows() -> list[dict[str, Any]]:
    """Active and paused rollouts with their merchant counts (``rollout_error_rates``: two
    queries, whatever the history)."""
    rollouts = list(
        Rollout.objects.filter(status__in=OPEN_STATES)
        .order_by("pk")
        .only(
            "pk", "plugin_name", "version", "status", "rollout_strategy", "rollout_percentage", "error_threshold",
            "min_sample_size", "sira_monitoring", "wilson_gate", "auto_paused", "created_at",
        )
    )  # fmt: skip
    rates = rollout_error_rates(r.pk for r in rollouts)
    return [
        {
            "rollout_id": str(r.pk),
            "plugin": r.plugin_name,
            "version": r.version,
            "status": r.status,
            "strategy": r.rollout_strategy,
            "cohort_ratio": float(r.rollout_percentage) / 100,
            "error_ratio": float(rates[r.pk].error_rate),
            "error_lower_bound_ratio": rates[r.pk].lower_bound,
            "threshold_ratio": float(r.error_threshold),
            "min_sample_size": r.min_sample_size,
            "sira_monitoring": r.sira_monitoring,
            "wilson_gate": r.wilson_gate,
            "auto_paused": r.auto_paused,
            "created": r.created_at.timestamp(),
            "upgrades": rates[r.pk].reports,
            "upgrade_errors": rates[r.pk].reports_failed,
            "merchants_upgraded": rates[r.pk].merchants_upgraded,
            "merchants_reporting": rates[r.pk].merchants,
            "merchants_failed": rates[r.pk].merchants_failed,
            "reports_outside_cohort": rates[r.pk].reports_outside_cohort,
        }
        for r in rollouts
    ]


def _rollout_status_rows() -> list[dict[str, Any]]:
    return list(
        Rollout.objects.values("status")
        .annotate(count=Count("pk"), auto_paused=Count("pk", filter=Q(auto_paused=True)))
        .order_by("status")
    )


def _sira_rows() -> list[dict[str, Any]]:
    """Sira check runs by source (beat, http, command, sql). A run counts once it finished."""
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


def _rollouts(rows: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> list[Metric]:
    def gauge(name: str, doc: str, labels: list[str] = ROLLOUT_LABELS) -> GaugeFamily:
        return GaugeFamily(name, doc, labels=labels)

    info = InfoFamily(
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
        "Cohort merchants whose latest report is failed or rolled back, over cohort merchants reporting, 0–1.",
    )
    lower_bound = gauge(
        "molam_rollout_error_lower_bound_ratio",
        "Wilson 95 % lower bound of the error ratio (what Sira judges when the rollout's Wilson gate is on), 0–1.",
    )
    threshold = gauge(
        "molam_rollout_error_threshold_ratio", "Error ratio above which Sira pauses the rollout, 0–1."
    )
    min_sample = gauge(
        "molam_rollout_min_sample_size", "Merchants reporting needed before Sira judges the rollout."
    )
    created = gauge("molam_rollout_created_timestamp_seconds", "When the rollout was created (unix time).")
    status = gauge(
        "molam_rollout_status",
        "1 for the rollout's current status, 0 for the other open status.",
        labels=[*ROLLOUT_LABELS, "status"],
    )
    auto_paused = gauge("molam_rollout_auto_paused", "1 when Sira paused the rollout.")
    upgrades = CounterFamily(
        "molam_rollout_upgrades",
        "Upgrade reports from the rollout's cohort merchants since it started.",
        labels=ROLLOUT_LABELS,
    )
    upgrade_errors = CounterFamily(
        "molam_rollout_upgrade_errors",
        "Failed or rolled-back upgrade reports from the rollout's cohort merchants since it started.",
        labels=ROLLOUT_LABELS,
    )
    outside = CounterFamily(
        "molam_rollout_reports_outside_cohort",
        "Upgrade reports from merchants the rollout did not select (stored, never counted).",
        labels=ROLLOUT_LABELS,
    )
    merchants = gauge(
        "molam_rollout_merchants_upgraded", "Cohort merchants whose latest report is a successful upgrade."
    )
    reporting = gauge(
        "molam_rollout_merchants_reporting", "Cohort merchants that reported, each counted once."
    )
    merchants_failed = gauge(
        "molam_rollout_merchants_failed", "Cohort merchants whose latest report is failed or rolled back."
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
        lower_bound.add_metric(labels, row["error_lower_bound_ratio"])
        threshold.add_metric(labels, row["threshold_ratio"])
        min_sample.add_metric(labels, row["min_sample_size"])
        created.add_metric(labels, row["created"])
        for state in OPEN_STATES:
            status.add_metric([*labels, str(state)], 1 if row["status"] == state else 0)
        auto_paused.add_metric(labels, 1 if row["auto_paused"] else 0)
        upgrades.add_metric(labels, row["upgrades"])
        upgrade_errors.add_metric(labels, row["upgrade_errors"])
        merchants.add_metric(labels, row["merchants_upgraded"])
        outside.add_metric(labels, row["reports_outside_cohort"])
        reporting.add_metric(labels, row["merchants_reporting"])
        merchants_failed.add_metric(labels, row["merchants_failed"])

    by_status = GaugeFamily("molam_rollouts", "Rollouts by status.", labels=["status"])
    counts = {row["status"]: row for row in statuses}
    # Every status is always present, so "no paused rollout" reads 0, not "no data".
    for state in RolloutStatus.values:
        by_status.add_metric([state], counts.get(state, {}).get("count", 0))
    paused_by_sira = GaugeFamily(
        "molam_rollouts_paused_by_sira",
        "Rollouts currently paused by Sira (auto-pause), not yet resumed or closed.",
        value=counts.get(RolloutStatus.PAUSED, {}).get("auto_paused", 0),
    )
    return [
        info,
        cohort,
        error,
        lower_bound,
        threshold,
        min_sample,
        created,
        status,
        auto_paused,
        upgrades,
        upgrade_errors,
        merchants,
        reporting,
        merchants_failed,
        outside,
        by_status,
        paused_by_sira,
    ]


def _sira(rows: list[dict[str, Any]]) -> list[Metric]:
    runs = CounterFamily(
        "molam_sira_checks", "Finished Sira auto-pause checks, by source.", labels=["source"]
    )
    paused = CounterFamily(
        "molam_sira_rollouts_paused",
        "Rollouts paused by Sira auto-pause checks, by source.",
        labels=["source"],
    )
    last = GaugeFamily(
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


# --- Sira freshness: the /readyz check and the rollout page's warning -------------------------

# Sira runs every 5 minutes; three missed runs in a row mean the scheduler is stalled.
DEFAULT_SIRA_MAX_AGE_SECONDS = 15 * 60


def sira_max_age() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "SIRA_MAX_AGE_SECONDS", DEFAULT_SIRA_MAX_AGE_SECONDS)))


@dataclass(frozen=True)
class SiraFreshness:
    """When a Sira check last finished (any source), and whether that is recent enough.

    The one staleness rule, shared by ``/readyz`` and the rollout-control page.
    """

    last_run: datetime | None
    age_seconds: int | None
    max_age_seconds: int

    @property
    def ok(self) -> bool:
        return self.age_seconds is not None and self.age_seconds <= self.max_age_seconds

    @property
    def stale(self) -> bool:
        return not self.ok

    @property
    def minutes_ago(self) -> int | None:
        return self.age_seconds // 60 if self.age_seconds is not None else None

    @property
    def max_age_minutes(self) -> int:
        return self.max_age_seconds // 60

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "last_run_at": self.last_run.isoformat() if self.last_run else None,
            "age_seconds": self.age_seconds,
            "max_age_seconds": self.max_age_seconds,
        }


def sira_freshness(now=None) -> SiraFreshness:
    now = now or timezone.now()
    last = AutoCheckRun.objects.filter(finished_at__isnull=False).aggregate(last=Max("finished_at"))["last"]
    return SiraFreshness(
        last_run=last,
        age_seconds=round((now - last).total_seconds()) if last else None,
        max_age_seconds=int(sira_max_age().total_seconds()),
    )


def sira_status(now=None) -> dict:
    """``sira_freshness`` as JSON (the ``sira`` object of ``/readyz``)."""
    return sira_freshness(now).as_dict()


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} minutes ago"
    return f"{seconds // 3600} hours ago"


def readiness() -> ReadinessResult:
    """``/readyz``: the Sira auto-pause check must have finished recently (is beat running?)."""
    try:
        sira = sira_status()
    except Exception:  # noqa: BLE001 - an unreadable run table is a failed check
        logger.warning("readiness check: Sira runs unreadable", exc_info=True)
        return ReadinessResult("the Sira run table could not be read")
    if sira["ok"]:
        return ReadinessResult("ok", sira)
    if sira["last_run_at"] is None:
        return ReadinessResult("the Sira auto-pause check has never run", sira)
    return ReadinessResult(
        f"the Sira auto-pause check last ran {_ago(sira['age_seconds'])} "
        f"(at {sira['last_run_at']}); is Celery beat running?",
        sira,
    )
