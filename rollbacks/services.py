"""Upgrade reports and rollbacks: the one place each of these operations lives."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from molam_upgrades import idempotency, registry, rows
from molam_upgrades.alerts import raise_alert
from molam_upgrades.choices import AlertSeverity
from molam_upgrades.exceptions import Conflict, InvalidTransition
from molam_upgrades.models import AuditEntry

from . import aggregates, approvals, report_writer
from .choices import CLOSED_APPROVAL_STATES, RollbackStatus, RollbackTrigger, UpgradeStatus
from .models import FLEET_MERCHANT_ID, RollbackHistory, UpgradeLog

logger = logging.getLogger("molam.rollbacks")


def new_upgrade_report(
    *,
    merchant_id: UUID,
    plugin_name: str,
    from_version: str,
    to_version: str,
    status: str,
    error: str | None = None,
    duration_ms: int | None = None,
) -> UpgradeLog:
    """An upgrade attempt, not yet stored (:func:`store_report`). A successful upgrade needs no
    rollback (seed: not_required)."""
    return UpgradeLog(
        merchant_id=merchant_id,
        plugin_name=plugin_name,
        from_version=from_version,
        to_version=to_version,
        status=status,
        error=error or None,
        duration_ms=duration_ms,
        rollback_status=RollbackStatus.NOT_REQUIRED if status == UpgradeStatus.SUCCESS else None,
    )


def record_upgrade(**report) -> UpgradeLog:
    """Store an upgrade attempt (the fields of :func:`new_upgrade_report`)."""
    return store_report(new_upgrade_report(**report))


def store_report(report: UpgradeLog, key_record: dict | None = None) -> UpgradeLog | None:
    """Store a new upgrade report and count it, atomically: the one way a report is written.

    The report is stamped with the rollout it was made under and whether its merchant was in
    that rollout's cohort, then the rollout's aggregates move. With ``key_record`` (the API's
    Idempotency-Key record for the response), the key is claimed in the same write; None is
    returned, and nothing written, when that key was recorded first.

    On PostgreSQL this is one statement (``aggregates.store_batch``), shared with the reports that
    arrive at the same moment when called outside a transaction (``report_writer``, group
    commit); elsewhere (the embedded SQLite default) :func:`store_report_in_steps`.
    """
    if report_writer.enabled():
        stored = report_writer.store(report, key_record)
    elif connection.vendor == "postgresql":
        stored = aggregates.store_batch([(report, key_record)])[0]
    else:
        return store_report_in_steps(report, key_record)
    return report if stored else None


def store_report_in_steps(report: UpgradeLog, key_record: dict | None = None) -> UpgradeLog | None:
    """:func:`store_report` as separate statements in one transaction, for any database: the
    same rows as PostgreSQL's single statement (tests compare both on the same reports)."""
    # No savepoint when called inside a transaction: any error here ends that whole
    # transaction anyway.
    with transaction.atomic(savepoint=False):
        if key_record is not None and not idempotency.claim(key_record):
            return None
        aggregates.stamp_report(report)
        rows.insert(report)
        aggregates.count_report(report)
    return report


@transaction.atomic
def log_rollback_event(
    *,
    merchant_id: UUID,
    plugin_name: str,
    rollback_version: str,
    status: str,
    reason: str | None,
    from_version: str | None = None,
    to_version: str | None = None,
) -> UpgradeLog:
    """Record a rollback on the merchant's latest upgrade log for the plugin.

    Creates a ``failed`` upgrade log when the merchant has none (the rollback proves an
    upgrade was attempted and did not stick).
    """
    log = (
        UpgradeLog.objects.select_for_update()
        .filter(merchant_id=merchant_id, plugin_name=plugin_name)
        .order_by("-created_at")
        .first()
    )
    now = timezone.now()
    if log is None:
        log = UpgradeLog(
            merchant_id=merchant_id,
            plugin_name=plugin_name,
            from_version=from_version or rollback_version,
            to_version=to_version or "",
            status=UpgradeStatus.FAILED,
            error=reason,
        )
    log.rollback_version = rollback_version
    log.rollback_status = status
    log.rollback_reason = reason
    log.rollback_triggered_at = now
    if log._state.adding:
        return store_report(log)
    # The upgrade's outcome (status) is unchanged, so no aggregate moves.
    log.save(
        update_fields=["rollback_version", "rollback_status", "rollback_reason", "rollback_triggered_at"]
    )
    return log


def initiate_rollback(
    *,
    actor: str,
    merchant_id: UUID,
    plugin_name: str,
    from_version: str,
    to_version: str,
    trigger: str,
    reason: str | None,
) -> RollbackHistory:
    """Open a rollback. An operator-forced one waits in ``rollback/pending`` for the agent."""
    with transaction.atomic():
        if trigger == RollbackTrigger.OPERATOR_FORCED:
            duplicate = (
                RollbackHistory.objects.select_for_update()
                .filter(
                    merchant_id=merchant_id,
                    plugin_name=plugin_name,
                    rollback_trigger=RollbackTrigger.OPERATOR_FORCED,
                    completed_at__isnull=True,
                )
                .exclude(approval_status__in=CLOSED_APPROVAL_STATES)
                .first()
            )
            if duplicate is not None:
                raise Conflict(
                    f"An operator-forced rollback of {plugin_name} is already pending for this merchant "
                    f"({duplicate.rollback_id})."
                )
        rollback = RollbackHistory.objects.create(
            merchant_id=merchant_id,
            plugin_name=plugin_name,
            from_version=from_version,
            to_version=to_version,
            rollback_trigger=trigger,
            rollback_reason=reason,
            initiated_by=actor,
        )
        aggregates.count_rollback_initiated(rollback)
        if trigger == RollbackTrigger.OPERATOR_FORCED:
            AuditEntry.record(
                actor=actor,
                action="rollback.forced",
                obj=rollback,
                after={
                    "merchant_id": str(merchant_id),
                    "plugin_name": plugin_name,
                    "from_version": from_version,
                    "to_version": to_version,
                    "reason": reason,
                },
            )
            # High-value merchant: held for a second person's approval; else the merchant is told.
            approvals.after_forced_rollback(rollback, actor=actor)
    logger.info(
        "rollback initiated: %s %s→%s (%s)",
        plugin_name,
        from_version,
        to_version,
        trigger,
        extra={
            "event": "rollback_initiated",
            "rollback_id": str(rollback.rollback_id),
            "merchant_id": str(merchant_id),
        },
    )
    return rollback


def complete_rollback(
    *,
    rollback: RollbackHistory,
    success: bool,
    duration_ms: int | None,
    files_restored: int | None,
    db_restored: bool | None,
    error_message: str | None = None,
) -> RollbackHistory:
    """Close a rollback once (409 the second time); a failed one alerts ops."""
    with transaction.atomic():
        locked = RollbackHistory.objects.select_for_update().get(pk=rollback.pk)
        if locked.completed_at is not None:
            raise InvalidTransition("This rollback was already completed.")
        approvals.check_completable(locked)
        locked.success = success
        locked.duration_ms = duration_ms
        locked.files_restored = files_restored
        locked.db_restored = db_restored
        locked.error_message = error_message or None
        locked.completed_at = timezone.now()
        locked.save()
        aggregates.count_rollback_completed(locked)
        log_rollback_event(
            merchant_id=locked.merchant_id,
            plugin_name=locked.plugin_name,
            rollback_version=locked.to_version,
            status=RollbackStatus.SUCCESS if success else RollbackStatus.FAILED,
            reason=locked.rollback_reason,
            # If the merchant never reported the upgrade, record it: to_version → from_version failed.
            from_version=locked.to_version,
            to_version=locked.from_version,
        )
        if not success:
            alert_rollback_failed(locked)
    log = logger.info if success else logger.error
    log(
        "rollback %s: %s %s→%s in %s ms",
        "succeeded" if success else "failed",
        locked.plugin_name,
        locked.from_version,
        locked.to_version,
        duration_ms,
        extra={
            "event": "rollback_completed" if success else "rollback_failed",
            "rollback_id": str(locked.rollback_id),
        },
    )
    return locked


def alert_rollback_failed(rollback: RollbackHistory):
    """Page ops about a failed rollback (the one place this alert is built)."""
    return raise_alert(
        kind="rollback_failed",
        summary=f"Plugin rollback failed: {rollback.plugin_name} {rollback.from_version} → {rollback.to_version} "
        f"for merchant {rollback.merchant_id}",
        dedup_key=f"rollback-failed-{rollback.rollback_id}",
        severity=AlertSeverity.CRITICAL,
        details={
            "rollback_id": str(rollback.rollback_id),
            "merchant_id": str(rollback.merchant_id),
            "plugin_name": rollback.plugin_name,
            "from_version": rollback.from_version,
            "to_version": rollback.to_version,
            "trigger": rollback.rollback_trigger,
            "error_message": rollback.error_message,
        },
    )


def import_upgrade_reports(reports: list[dict]) -> int:
    """Store many upgrade reports (demo data, imports), each stamped and counted like one sent
    over the API. Returns the count."""
    with transaction.atomic():
        for fields in reports:
            store_report(UpgradeLog(**fields))
    return len(reports)


def import_rollback_history(rollbacks: list[RollbackHistory]) -> int:
    """Store many rollbacks at once (demo data, imports): one INSERT, then their aggregates."""
    with transaction.atomic():
        RollbackHistory.objects.bulk_create(rollbacks)
        for rollback in rollbacks:
            aggregates.count_rollback_initiated(rollback)
            if rollback.completed_at is not None:
                aggregates.count_rollback_completed(rollback)
    return len(rollbacks)


def close_rollback(rollback: RollbackHistory, *, actor: str) -> RollbackHistory:
    """Close an in-progress rollback as failed on an operator's word (the agent never reported).

    Goes through ``complete_rollback`` (409 when already completed, ops alerted) and is audited.
    """
    with transaction.atomic():
        closed = complete_rollback(
            rollback=rollback,
            success=False,
            duration_ms=None,
            files_restored=None,
            db_restored=None,
            error_message=f"Closed as failed by {actor}: the agent never reported completion.",
        )
        AuditEntry.record(
            actor=actor,
            action="rollback.closed",
            obj=closed,
            before={"status": "in_progress"},
            after={"status": "completed", "success": False},
        )
    return closed


def record_sira_pause(
    *, plugin_name: str, version: str, rollout_id: int, error_rate: Decimal, reason: str, actor: str
) -> RollbackHistory:
    """Record a Sira auto-pause in the rollback history (a fleet event under the nil merchant).

    Called by ``rollouts.services`` inside its pause transaction: this app owns the history table.
    """
    return RollbackHistory.objects.create(
        merchant_id=FLEET_MERCHANT_ID,
        plugin_name=plugin_name,
        from_version=version,
        to_version=version,
        rollback_trigger=RollbackTrigger.AUTOMATIC,
        success=True,
        duration_ms=0,
        files_restored=0,
        db_restored=False,
        rollback_reason=reason,
        sira_triggered=True,
        error_rate_detected=error_rate,
        rollout_id=rollout_id,
        initiated_by=actor,
        completed_at=timezone.now(),
    )


def completed_rollbacks():
    """Merchant rollbacks that finished (Sira pause records are not merchant rollbacks)."""
    return RollbackHistory.objects.filter(completed_at__isnull=False, sira_triggered=False)


def rollback_stats(now=None) -> dict:
    """The seed's rollback KPIs over completed rollbacks, from the aggregates.

    All-time figures come from ``rollback_totals``; the sliding windows (24 hours, 7 days) from
    ``aggregates.rollback_windows`` (daily figures plus the raw rows of the window's edges).
    """
    now = now or timezone.now()
    totals = aggregates.plugin_rollback_totals()
    by_plugin = aggregates.rollback_windows(now).values()
    windows = {key: sum(row[key] for row in by_plugin) for key in ("last_24h", "failed_7d", "total_7d")}
    overall = {key: sum(row[key] for row in totals.values()) for key in aggregates.TOTALS_SUMMED}
    return {
        "success_rate_by_plugin": [
            {
                "plugin_name": name,
                "total_rollbacks": row["completed"],
                "successful_rollbacks": row["succeeded"],
                "success_rate_pct": _pct(row["succeeded"], row["completed"]),
                "avg_duration_ms": _avg(row["duration_sum_ms"], row["duration_count"]),
            }
            for name, row in totals.items()
            if row["completed"]
        ],
        "rollbacks_last_24h": windows["last_24h"],
        "failed_rollbacks_last_7d": windows["failed_7d"],
        "rollbacks_last_7d": windows["total_7d"],
        "total_rollbacks": overall["completed"],
        "overall_success_rate_pct": _pct(overall["succeeded"], overall["completed"]),
        "avg_duration_ms": _avg(overall["duration_sum_ms"], overall["duration_count"]),
    }


def _avg(total_ms: int, count: int) -> int | None:
    return round(total_ms / count) if count else None


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def rollbacks_per_day(days: int = 14, now=None) -> list[dict]:
    """Completed rollbacks per UTC day for the last ``days`` days (oldest first), split by outcome."""
    now = now or timezone.now()
    start = (now - timedelta(days=days - 1)).date()
    by_day = aggregates.rollbacks_by_day(since=start)
    series = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        row = by_day.get(day, {})
        series.append(
            {"date": day.isoformat(), "successful": row.get("succeeded", 0), "failed": row.get("failed", 0)}
        )
    return series


# The seed's targets ("Monitoring & Alerts"): success rate > 95 %, average duration < 3 s,
# alert when more than 5 rollbacks fail in 7 days, rollout velocity (first stage → 100 %) < 7 days.
KPI_TARGETS = {
    "rollback_success_rate_pct": (">", 95.0),
    "avg_rollback_duration_ms": ("<", 3000),
    "failed_rollbacks_7d": ("<=", 5),
    "rollout_velocity_days": ("<", 7.0),
}


def _kpi(name: str, value) -> dict:
    comparison, target = KPI_TARGETS[name]
    if value is None:
        ok = None
    elif comparison == ">":
        ok = value > target
    elif comparison == "<":
        ok = value < target
    else:
        ok = value <= target
    return {"value": value, "target": target, "comparison": comparison, "ok": ok}


def kpis(stats: dict, now=None) -> dict:
    """Each seed KPI with its target and whether it is met (None when there is no data yet)."""
    per_day = rollbacks_per_day(now=now)
    return {
        "rollback_success_rate_pct": _kpi("rollback_success_rate_pct", stats["overall_success_rate_pct"]),
        "avg_rollback_duration_ms": _kpi("avg_rollback_duration_ms", stats["avg_duration_ms"]),
        "failed_rollbacks_7d": _kpi("failed_rollbacks_7d", stats["failed_rollbacks_last_7d"]),
        "rollout_velocity_days": _kpi("rollout_velocity_days", registry.kpi_value("rollout_velocity_days")),
        "rollbacks_per_day": {
            "value": round(sum(d["successful"] + d["failed"] for d in per_day) / len(per_day), 2),
            "series": per_day,
            "target": None,
            "comparison": "monitor",
            "ok": None,
        },
    }
