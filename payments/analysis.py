"""Canary versus baseline for a rollout, over the same hours, from the hourly payment reports.

* Canary: merchants the rollout selected (bucket and, when the registry knows them, targets)
  reporting the rollout's version.
* Baseline: merchants reporting an older version — selected but not yet upgraded, and
  unselected merchants alike.
* Reports of a newer version, or of the rollout's version from a merchant it did not select,
  are left out (and counted as such), so one shop cannot steer the verdict by mislabelling.
* Hours: the complete hours since the rollout started (at most ``PAYMENT_CANARY_WINDOW_HOURS``)
  in which the canary reported; the baseline is read over those same hours only, so daily
  traffic patterns fall on both sides alike.

The sums per merchant are computed by the database; the tests in ``payments.stats`` run here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, FloatField, Q, Sum
from django.utils import timezone

from merchants.models import Merchant
from molam_upgrades.versions import Version
from rollouts import cohort
from rollouts.models import Rollout

from . import stats
from .models import PaymentHealthReport


def judge_settings() -> stats.Settings:
    return stats.Settings(
        alpha=float(getattr(settings, "PAYMENT_CANARY_ALPHA", 0.01)),
        success_margin=float(getattr(settings, "PAYMENT_CANARY_SUCCESS_MARGIN", 0.01)),
        latency_margin=float(getattr(settings, "PAYMENT_CANARY_LATENCY_MARGIN", 0.10)),
        min_merchants=int(getattr(settings, "PAYMENT_CANARY_MIN_MERCHANTS", 10)),
        min_payments=int(getattr(settings, "PAYMENT_CANARY_MIN_PAYMENTS", 500)),
    )


@dataclass(frozen=True)
class MerchantFigures:
    """One merchant's sums over the window on one side (canary or baseline)."""

    merchant_id: str
    attempted: int
    succeeded: int
    failed: int
    latency_count: int
    p95_ms: float | None  # latency-count-weighted mean of its hourly p95s


@dataclass(frozen=True)
class CanaryComparison:
    rollout_id: int
    plugin_name: str
    version: str
    window_start: datetime | None
    window_end: datetime
    hours: int
    canary: list[MerchantFigures]
    baseline: list[MerchantFigures]
    excluded_merchants: int
    success: stats.SuccessRateResult
    latency: stats.LatencyResult
    verdict: str

    @property
    def summary(self) -> str:
        parts = [self.success.reason, self.latency.reason]
        return f"canary {self.verdict}: " + "; ".join(parts)

    def figures(self) -> dict:
        return {
            "rollout_id": self.rollout_id,
            "plugin_name": self.plugin_name,
            "version": self.version,
            "hours": self.hours,
            "excluded_merchants": self.excluded_merchants,
            "success_rate": self.success.as_dict(),
            "latency": self.latency.as_dict(),
            "canary": _side(self.canary),
            "baseline": _side(self.baseline),
        }


def _side(rows: list[MerchantFigures]) -> dict:
    attempted = sum(r.attempted for r in rows)
    return {
        "merchants": len(rows),
        "attempted": attempted,
        "succeeded": sum(r.succeeded for r in rows),
        "failed": sum(r.failed for r in rows),
        "success_rate": sum(r.succeeded for r in rows) / attempted if attempted else None,
    }


def window_for(rollout: Rollout, now: datetime) -> tuple[datetime, datetime]:
    """Complete hours since the rollout started, at most PAYMENT_CANARY_WINDOW_HOURS of them."""
    end = now.replace(minute=0, second=0, microsecond=0)
    hours = int(getattr(settings, "PAYMENT_CANARY_WINDOW_HOURS", 24))
    started = rollout.created_at.replace(minute=0, second=0, microsecond=0)
    return max(started, end - timedelta(hours=hours)), end


def merchant_sums(plugin_name: str, version: str, start: datetime, end: datetime) -> list[dict]:
    """Per (merchant, installed version) sums over the canary's hours in [start, end), in SQL."""
    reports = PaymentHealthReport.objects.filter(plugin_name=plugin_name, hour__gte=start, hour__lt=end)
    canary_hours = reports.filter(installed_version=version).values("hour")
    with_latency = Q(latency_count__gt=0, latency_p95_ms__isnull=False)
    return list(
        reports.filter(hour__in=canary_hours)
        .values("merchant_id", "installed_version")
        .annotate(
            attempted=Sum("attempted"),
            succeeded=Sum("succeeded"),
            failed=Sum("failed"),
            latency_total=Sum("latency_count", filter=with_latency),
            p95_weighted=Sum(
                F("latency_p95_ms") * F("latency_count"), filter=with_latency, output_field=FloatField()
            ),
        )
        .order_by("merchant_id", "installed_version")
    )


def reporting_versions(now: datetime) -> set[tuple[str, str]]:
    """(plugin, installed version) pairs with a payment-health report in the longest window that
    ends at ``now``'s hour: a rollout whose pair is missing has no canary hour to judge."""
    end = now.replace(minute=0, second=0, microsecond=0)
    hours = int(getattr(settings, "PAYMENT_CANARY_WINDOW_HOURS", 24))
    return set(
        PaymentHealthReport.objects.filter(hour__gte=end - timedelta(hours=hours), hour__lt=end)
        .values_list("plugin_name", "installed_version")
        .distinct()
    )


def compare(rollout: Rollout, *, now: datetime | None = None, has_reports: bool = True) -> CanaryComparison:
    """Canary versus baseline for one rollout, judged by ``payments.stats``.

    ``has_reports=False`` (the version has no report in the window, ``reporting_versions``)
    gives the same "no data" judgement without querying.
    """
    now = now or timezone.now()
    start, end = window_for(rollout, now)
    query = start < end and has_reports
    rows = merchant_sums(rollout.plugin_name, rollout.version, start, end) if query else []
    target = Version(rollout.version)
    open_rollout = cohort.OpenRollout.from_model(rollout, None)
    # No rows, no look-up: over 1,000 active rollouts without reports, building the empty query
    # alone cost the Sira check ~0.2 ms per rollout.
    registry = (
        {
            m["id"]: m
            for m in Merchant.objects.filter(id__in={r["merchant_id"] for r in rows}).values(
                "id", "country", "tier"
            )
        }
        if rows
        else {}
    )
    canary: list[MerchantFigures] = []
    baseline: list[MerchantFigures] = []
    excluded: set = set()
    for row in rows:
        figures = MerchantFigures(
            merchant_id=str(row["merchant_id"]),
            attempted=row["attempted"] or 0,
            succeeded=row["succeeded"] or 0,
            failed=row["failed"] or 0,
            latency_count=row["latency_total"] or 0,
            p95_ms=(row["p95_weighted"] / row["latency_total"]) if row["latency_total"] else None,
        )
        try:
            installed = Version(row["installed_version"])
        except ValueError:
            excluded.add(row["merchant_id"])
            continue
        if installed == target and _selected(open_rollout, row["merchant_id"], registry):
            canary.append(figures)
        elif installed < target:
            baseline.append(figures)
        else:
            excluded.add(row["merchant_id"])
    judge = judge_settings()
    success = stats.success_rate_test(
        canary_succeeded=sum(r.succeeded for r in canary),
        canary_attempted=sum(r.attempted for r in canary),
        baseline_succeeded=sum(r.succeeded for r in baseline),
        baseline_attempted=sum(r.attempted for r in baseline),
        canary_merchants=len({r.merchant_id for r in canary if r.attempted}),
        baseline_merchants=len({r.merchant_id for r in baseline if r.attempted}),
        settings=judge,
    )
    latency = stats.latency_test(
        [r.p95_ms for r in canary if r.p95_ms is not None],
        [r.p95_ms for r in baseline if r.p95_ms is not None],
        settings=judge,
    )
    hours = (
        PaymentHealthReport.objects.filter(
            plugin_name=rollout.plugin_name, installed_version=rollout.version, hour__gte=start, hour__lt=end
        )
        .values("hour")
        .distinct()
        .count()
        if query
        else 0
    )
    return CanaryComparison(
        rollout_id=rollout.pk,
        plugin_name=rollout.plugin_name,
        version=rollout.version,
        window_start=start if start < end else None,
        window_end=end,
        hours=hours,
        canary=canary,
        baseline=baseline,
        excluded_merchants=len(excluded),
        success=success,
        latency=latency,
        verdict=stats.combine(success.verdict, latency.verdict),
    )


def _selected(open_rollout: cohort.OpenRollout, merchant_id, registry: dict) -> bool:
    known = registry.get(merchant_id)
    if known is None:
        # Not in the registry: its country/tier are unknown here; judge by the bucket alone.
        bucket = cohort.bucket_for(open_rollout.plugin_name, open_rollout.version, merchant_id)
        return cohort.selected(bucket, open_rollout.percentage)
    chosen, _, _ = cohort.in_cohort(open_rollout, merchant_id, known["country"], known["tier"])
    return chosen
