"""Payment health reports and the canary verdicts: the one place each operation lives."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.utils import timezone

from rollouts import services as rollout_services
from rollouts.choices import RolloutStatus
from rollouts.metrics import rollout_error_rate
from rollouts.models import Rollout
from rollouts.services import PausedRollout

from . import analysis
from .choices import Verdict
from .models import CanaryAnalysis, PaymentHealthReport

logger = logging.getLogger("molam.payments")


def record_payment_health(
    *,
    merchant_id: UUID,
    plugin_name: str,
    installed_version: str,
    hour: datetime,
    attempted: int,
    succeeded: int,
    failed_by_reason: dict[str, int],
    latency_count: int = 0,
    latency_p50_ms: float | None = None,
    latency_p95_ms: float | None = None,
) -> tuple[PaymentHealthReport, bool]:
    """Store one merchant's figures for one hour; the latest figures for that hour win.

    Returns the report and whether it was new. An hour still filling up is re-sent by the
    agent with larger counts; the upsert keeps one row per (merchant, plugin, version, hour).
    """
    reasons = {key: int(value) for key, value in sorted(failed_by_reason.items()) if value}
    report, created = PaymentHealthReport.objects.update_or_create(
        merchant_id=merchant_id,
        plugin_name=plugin_name,
        installed_version=installed_version,
        hour=hour,
        defaults={
            "attempted": attempted,
            "succeeded": succeeded,
            "failed": sum(reasons.values()),
            "failed_by_reason": reasons,
            "latency_count": latency_count,
            "latency_p50_ms": latency_p50_ms if latency_count else None,
            "latency_p95_ms": latency_p95_ms if latency_count else None,
        },
    )
    return report, created


def analyse_rollout(rollout: Rollout, *, now: datetime | None = None) -> CanaryAnalysis:
    """Compare a rollout's canary with its baseline and keep the result (one row per rollout)."""
    return _keep([_judgement(rollout, analysis.compare(rollout, now=now), now)])[0]


def analyse_rollouts(rollouts: list[Rollout], *, now: datetime | None = None) -> list[CanaryAnalysis]:
    """``analyse_rollout`` for many rollouts at the cost of the ones with payment reports.

    One query finds the versions with reports in the window; the others are judged "no data"
    without a query, and every result is written in one upsert. So a Sira run over 1,000 active
    rollouts costs a handful of statements plus the canaries that actually report, not a few per
    rollout.
    """
    now = now or timezone.now()
    reporting = analysis.reporting_versions(now)
    return _keep(
        [
            _judgement(
                rollout,
                analysis.compare(
                    rollout, now=now, has_reports=(rollout.plugin_name, rollout.version) in reporting
                ),
                now,
            )
            for rollout in rollouts
        ]
    )


# Every column but the keys is replaced: derived from the model, so a new column can never be
# left out of the upsert (the API's field list, in api/serializers.py, is a contract of its own).
_KEPT_FIELDS = [
    field.name for field in CanaryAnalysis._meta.concrete_fields if field.name not in ("id", "rollout_id")
]


def _judgement(
    rollout: Rollout, comparison: analysis.CanaryComparison, now: datetime | None
) -> CanaryAnalysis:
    return CanaryAnalysis(
        rollout_id=rollout.pk,
        verdict=comparison.verdict,
        success_verdict=comparison.success.verdict,
        latency_verdict=comparison.latency.verdict,
        summary=comparison.summary,
        figures=comparison.figures(),
        window_start=comparison.window_start,
        window_end=comparison.window_end,
        computed_at=now or timezone.now(),
    )


def _keep(judgements: list[CanaryAnalysis]) -> list[CanaryAnalysis]:
    """Insert or replace each rollout's row (``INSERT … ON CONFLICT (rollout_id) DO UPDATE``)."""
    if judgements:
        CanaryAnalysis.objects.bulk_create(
            judgements, update_conflicts=True, unique_fields=["rollout_id"], update_fields=_KEPT_FIELDS
        )
    return judgements


def canary_pause_reason(result: CanaryAnalysis) -> str:
    """The pause reason Sira records: which test failed, with its figures."""
    figures = result.figures
    failing = []
    if result.success_verdict == Verdict.FAIL:
        failing.append(figures["success_rate"]["reason"])
    if result.latency_verdict == Verdict.FAIL:
        failing.append(figures["latency"]["reason"])
    canary, baseline = figures["canary"], figures["baseline"]
    return (
        f"Sira canary check: {figures['plugin_name']} {figures['version']} hurts payments — "
        + "; ".join(failing)
        + f". Canary {canary['merchants']} merchants / {canary['attempted']} payments, baseline "
        f"{baseline['merchants']} merchants / {baseline['attempted']} payments over {figures['hours']} h."
    )


@dataclass(frozen=True)
class CanaryPause(PausedRollout):
    """A rollout the canary check paused: the auto-check's ``paused_rollouts`` entry (with the
    upgrade figures at that moment; the canary rule is another one) plus the check and its reason."""

    reason: str

    def as_dict(self) -> dict:
        return {**super().as_dict(), "check": "payment_canary", "reason": self.reason}


def check_canaries(*, actor: str = "sira", now: datetime | None = None) -> list[CanaryPause]:
    """The Sira payment rule: judge every monitored active rollout, pause those that fail.

    Registered as a Sira check (``PaymentsConfig.ready``), so the beat, ``POST
    rollouts/auto-check`` and ``manage.py auto_check`` run it in the same auto-check as the
    error-rate rule. The pause is ``rollouts.services.sira_pause``, the one the error-rate rule
    uses (row lock, Sira-pause history row, audit entry, alert); a rollout paused meanwhile by
    anyone else is left alone, so overlapping runs pause a rollout once.
    """
    paused: list[CanaryPause] = []
    rollouts = list(Rollout.objects.filter(status=RolloutStatus.ACTIVE, sira_monitoring=True))
    for rollout, result in zip(rollouts, analyse_rollouts(rollouts, now=now), strict=True):
        if result.verdict != Verdict.FAIL:
            continue
        reason = canary_pause_reason(result)
        health = rollout_error_rate(rollout.pk)
        done = rollout_services.sira_pause(
            rollout.pk,
            actor=actor,
            reason=reason,
            error_rate=health.error_rate,
            audit={"check": "payment_canary", "verdict": result.verdict},
            alert=lambda locked, text, result=result: {
                "kind": "rollout_canary_failed",
                "summary": f"Rollout paused by Sira: {locked.plugin_name} {locked.version} hurts payments",
                "details": {"reason": text, "figures": result.figures},
            },
        )
        if done is None:
            continue  # paused, completed or unmonitored meanwhile (another run or a person)
        paused.append(
            CanaryPause(
                rollout_id=rollout.pk,
                plugin_name=rollout.plugin_name,
                version=rollout.version,
                error_rate=health.error_rate,
                threshold=rollout.error_threshold,
                health=health,
                reason=reason,
            )
        )
    return paused
