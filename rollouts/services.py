"""Rollout lifecycle, releases and the Sira auto-pause: the one place each change lives.

Every change to a rollout locks its row (``select_for_update``) so a pause racing a
percentage change cannot lose either, writes an audit entry, and invalidates the cached
decision data for the plugin once the transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from molam_upgrades import registry
from molam_upgrades.alerts import raise_alert
from molam_upgrades.choices import AlertSeverity
from molam_upgrades.exceptions import Conflict, InvalidTransition, NotFound
from molam_upgrades.models import AuditEntry
from molam_upgrades.sira_rules import should_pause
from rollbacks.reports import RolloutErrorRate, rollout_error_rates
from rollbacks.services import record_sira_pause

from . import cohort, signing
from .choices import OPEN_STATES, TRANSITIONS, RolloutStatus
from .models import AutoCheckRun, Release, Rollout

logger = logging.getLogger("molam.rollouts")

SIRA_ACTOR = "sira"


def _after_commit_invalidate(plugin_name: str) -> None:
    transaction.on_commit(lambda: cohort.invalidate(plugin_name))


def register_release(
    *, actor: str, plugin_name: str, version: str, download_url: str, sha256: str, signature: str = ""
) -> Release:
    """Register a downloadable release (unique per plugin and version: 409 otherwise).

    https download URLs only (loopback excepted); with a release signing key configured, the
    release must be signed and verify (400 otherwise, see ``signing``).
    """
    signing.check_download_url(download_url)
    signing.verify_release(download_url=download_url, sha256=sha256, signature=signature)
    try:
        with transaction.atomic():
            release = Release.objects.create(
                plugin_name=plugin_name,
                version=version,
                download_url=download_url,
                sha256=sha256,
                signature=signature or "",
                created_by=actor,
            )
            AuditEntry.record(
                actor=actor,
                action="release.registered",
                obj=release,
                after={
                    "plugin_name": plugin_name,
                    "version": version,
                    "download_url": download_url,
                    "sha256": sha256,
                    "signed": bool(signature),
                },
            )
            _after_commit_invalidate(plugin_name)
    except IntegrityError as exc:
        raise Conflict(f"Release {plugin_name} {version} is already registered.") from exc
    return release


def create_rollout(*, actor: str, **fields) -> Rollout:
    """Start a rollout. At most one rollout per plugin may be active or paused (409)."""
    plugin_name = fields["plugin_name"]
    try:
        with transaction.atomic():
            if (
                Rollout.objects.select_for_update()
                .filter(plugin_name=plugin_name, status__in=OPEN_STATES)
                .exists()
            ):
                raise _OpenRolloutExists
            if Decimal(fields.get("rollout_percentage", 0)) == 100:
                fields["full_rollout_at"] = timezone.now()
            rollout = Rollout.objects.create(created_by=actor, **fields)
            AuditEntry.record(actor=actor, action="rollout.created", obj=rollout, after=rollout.snapshot())
            _after_commit_invalidate(plugin_name)
    except (IntegrityError, _OpenRolloutExists) as exc:
        open_rollout = Rollout.objects.filter(plugin_name=plugin_name, status__in=OPEN_STATES).first()
        detail = (
            f" (rollout {open_rollout.pk}, {open_rollout.version}, {open_rollout.status})"
            if open_rollout
            else ""
        )
        raise Conflict(
            f"{plugin_name} already has an active or paused rollout{detail}; complete it first."
        ) from exc
    logger.info(
        "rollout created: %s %s at %s%%",
        plugin_name,
        rollout.version,
        rollout.rollout_percentage,
        extra={"event": "rollout_created", "rollout_id": rollout.pk},
    )
    return rollout


class _OpenRolloutExists(Exception):
    pass


def _apply_status(
    rollout: Rollout, status: str, *, actor: str, reason: str | None, auto: bool = False
) -> None:
    if status not in TRANSITIONS[rollout.status]:
        if status == rollout.status:
            raise InvalidTransition(f"Rollout {rollout.pk} is already {status}.")
        raise InvalidTransition(f"Rollout {rollout.pk} cannot move from {rollout.status} to {status}.")
    now = timezone.now()
    rollout.status = status
    if status == RolloutStatus.PAUSED:
        rollout.paused_reason = reason or ("Paused by Sira" if auto else "Paused by an operator")
        rollout.paused_by = actor
        rollout.paused_at = now
        rollout.auto_paused = auto
    elif status == RolloutStatus.ACTIVE:
        rollout.paused_reason = None
        rollout.paused_by = None
        rollout.paused_at = None
        rollout.auto_paused = False
    else:  # completed / rolled_back: final
        rollout.completed_at = now


_ACTIONS = {
    RolloutStatus.PAUSED: "rollout.paused",
    RolloutStatus.ACTIVE: "rollout.resumed",
    RolloutStatus.COMPLETED: "rollout.completed",
    RolloutStatus.ROLLED_BACK: "rollout.rolled_back",
}


def change_rollout(
    rollout_id: int,
    *,
    actor: str,
    percentage: Decimal | None = None,
    status: str | None = None,
    reason: str | None = None,
    expected_percentage: Decimal | None = None,
    auto: bool = False,
) -> Rollout:
    """Change a rollout's percentage and/or status atomically (allowed moves only, 409 else).

    ``expected_percentage`` is what the caller last saw: when the rollout has moved since, the
    change is refused (409) rather than applied on top, checked under the row lock.
    """
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().filter(pk=rollout_id).first()
        if rollout is None:
            raise NotFound(f"No rollout with id {rollout_id}.")
        before = rollout.snapshot()
        if expected_percentage is not None and Decimal(expected_percentage) != rollout.rollout_percentage:
            raise Conflict(
                f"the percentage changed to {rollout.rollout_percentage.normalize():f} % since this page "
                "was loaded; nothing was changed, check it and try again."
            )
        if percentage is not None:
            if not rollout.is_open:
                raise Conflict(
                    f"Rollout {rollout.pk} is {rollout.status}; its percentage can no longer change."
                )
            if Decimal(percentage) != rollout.rollout_percentage:
                rollout.rollout_percentage = Decimal(percentage)
                if rollout.rollout_percentage == 100 and rollout.full_rollout_at is None:
                    rollout.full_rollout_at = timezone.now()
                AuditEntry.record(
                    actor=actor,
                    action="rollout.percentage_changed",
                    obj=rollout,
                    before={"rollout_percentage": before["rollout_percentage"]},
                    after={
                        "rollout_percentage": f"{rollout.rollout_percentage:.2f}",
                        # Why it moved (a plan's stage, an operator's note), when the caller says.
                        **({"reason": reason} if reason else {}),
                    },
                )
        if status is not None:
            _apply_status(rollout, status, actor=actor, reason=reason, auto=auto)
            AuditEntry.record(
                actor=actor,
                action=_ACTIONS[status],
                obj=rollout,
                before={"status": before["status"], "paused_reason": before["paused_reason"]},
                after={"status": rollout.status, "paused_reason": rollout.paused_reason},
            )
        rollout.save()
        _after_commit_invalidate(rollout.plugin_name)
    # One line per state change, with an ``event`` a log search can find.
    if rollout.rollout_percentage != Decimal(before["rollout_percentage"]):
        logger.info(
            "rollout %s percentage changed: %s%% -> %s%%",
            rollout.pk,
            before["rollout_percentage"],
            rollout.rollout_percentage,
            extra={"event": "rollout_percentage_changed", "rollout_id": rollout.pk, "actor": actor},
        )
    if status is not None:
        logger.info(
            "rollout %s %s: %s %s at %s%%",
            rollout.pk,
            _EVENTS[status].removeprefix("rollout_").replace("_", " "),
            rollout.plugin_name,
            rollout.version,
            rollout.rollout_percentage,
            extra={"event": _EVENTS[status], "rollout_id": rollout.pk, "actor": actor},
        )
    return rollout


_EVENTS = {
    RolloutStatus.PAUSED: "rollout_paused",
    RolloutStatus.ACTIVE: "rollout_resumed",
    RolloutStatus.COMPLETED: "rollout_completed",
    RolloutStatus.ROLLED_BACK: "rollout_rolled_back",
}


def pause_rollout(rollout_id: int, *, actor: str, reason: str | None = None) -> Rollout:
    return change_rollout(rollout_id, actor=actor, status=RolloutStatus.PAUSED, reason=reason)


def resume_rollout(rollout_id: int, *, actor: str) -> Rollout:
    return change_rollout(rollout_id, actor=actor, status=RolloutStatus.ACTIVE)


def complete_rollout(rollout_id: int, *, actor: str) -> Rollout:
    return change_rollout(rollout_id, actor=actor, status=RolloutStatus.COMPLETED)


# --- Sira auto-pause ----------------------------------------------------------------------


@dataclass(frozen=True)
class PausedRollout:
    rollout_id: int
    plugin_name: str
    version: str
    error_rate: Decimal
    threshold: Decimal
    health: RolloutErrorRate

    def as_dict(self) -> dict:
        return {
            "rollout_id": self.rollout_id,
            "plugin_name": self.plugin_name,
            "version": self.version,
            "error_rate": float(self.error_rate),
            "threshold": float(self.threshold),
            "merchants_reporting": self.health.merchants,
            "merchants_failed": self.health.merchants_failed,
            "upgrades_total": self.health.reports,
            "upgrades_failed": self.health.reports_failed,
        }


def sira_reason(health: RolloutErrorRate, threshold: Decimal, *, wilson_gate: bool) -> str:
    # The SQL function auto_pause_failing_rollouts() writes the same sentence.
    bound = f", 95 % lower bound {health.lower_bound:.4f}" if wilson_gate else ""
    return (
        f"Sira auto-pause: error rate {health.error_rate:.4f}{bound} > threshold {threshold:.4f} "
        f"({health.merchants_failed}/{health.merchants} merchants failed or rolled back)"
    )


def auto_pause_failing_rollouts(*, source: str, actor: str = SIRA_ACTOR) -> list[PausedRollout]:
    """The Sira rule: pause every monitored active rollout whose error rate exceeds its threshold.

    Counts are merchants, each by its latest outcome, cohort only (``rollout_error_rates``);
    only rollouts with at least ``min_sample_size`` merchants are judged, and a rollout with
    the Wilson gate pauses only when the 95 % lower bound of its failure rate exceeds the
    threshold. Each pause is claimed under a row lock and re-checked, so overlapping runs
    (beat + HTTP + SQL) pause each rollout once; a second run pauses nothing new.
    """
    run = AutoCheckRun.objects.create(source=source, actor=actor)
    candidates = list(
        Rollout.objects.filter(status=RolloutStatus.ACTIVE, sira_monitoring=True).values(
            "pk", "min_sample_size", "error_threshold", "wilson_gate"
        )
    )
    rates = rollout_error_rates(row["pk"] for row in candidates)
    paused: list[PausedRollout] = []
    for row in candidates:
        health = rates[row["pk"]]
        if not should_pause(
            health.counts,
            threshold=row["error_threshold"],
            min_sample_size=row["min_sample_size"],
            wilson_gate=row["wilson_gate"],
        ):
            continue
        result = _auto_pause_one(row["pk"], actor=actor, health=health)
        if result is not None:
            paused.append(result)
    # Rules other apps register (the payments canary check) run in the same auto-check.
    for check in registry.sira_checks():
        paused.extend(check(actor=actor))
    AutoCheckRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(), checked_count=len(candidates), paused_count=len(paused)
    )
    return paused


def _auto_pause_one(rollout_id: int, *, actor: str, health: RolloutErrorRate) -> PausedRollout | None:
    def alert(rollout: Rollout, reason: str) -> dict:
        threshold, rate = rollout.error_threshold, health.error_rate
        return {
            "kind": "rollout_auto_paused",
            # Same sentence as the SQL function auto_pause_failing_rollouts().
            "summary": f"Rollout auto-paused by Sira: {rollout.plugin_name} {rollout.version} "
            f"error rate {rate * 100:.2f}% > {threshold * 100:.2f}%",
            "details": {
                "error_rate": f"{rate:.4f}",
                "threshold": f"{threshold:.4f}",
                "merchants_reporting": health.merchants,
                "merchants_failed": health.merchants_failed,
                "upgrades_total": health.reports,
                "upgrades_failed": health.reports_failed,
                "rollout_percentage": f"{rollout.rollout_percentage:.2f}",
            },
        }

    rollout = sira_pause(
        rollout_id,
        actor=actor,
        reason=lambda rollout: sira_reason(health, rollout.error_threshold, wilson_gate=rollout.wilson_gate),
        error_rate=health.error_rate,
        audit={"error_rate": f"{health.error_rate:.4f}"},
        alert=alert,
    )
    if rollout is None:
        return None
    return PausedRollout(
        rollout_id, rollout.plugin_name, rollout.version, health.error_rate, rollout.error_threshold, health
    )


def sira_pause(
    rollout_id: int,
    *,
    actor: str,
    reason: str | Callable[[Rollout], str],
    error_rate: Decimal,
    audit: dict,
    alert: Callable[[Rollout, str], dict],
) -> Rollout | None:
    """Sira pauses a rollout, whichever rule judged it (error rate, payment canary): the one way.

    Under the rollout's row lock, only if it is still active and monitored (otherwise None: a
    person or an overlapping run got there first, and nothing is written). Then, in the same
    transaction: the pause marked as Sira's, the Sira-pause row in the rollback history (with
    the upgrade error rate at that moment), the ``rollout.auto_paused`` audit entry (``audit``
    adds the rule's figures), and the alert ``alert(rollout, reason)`` describes (``kind``,
    ``summary``, ``details``; deduplicated per rule and rollout). ``reason`` may be a function
    of the locked rollout, for a sentence that quotes its threshold.
    """
    with transaction.atomic():
        rollout = (
            Rollout.objects.select_for_update()
            .filter(pk=rollout_id, status=RolloutStatus.ACTIVE, sira_monitoring=True)
            .first()
        )
        if rollout is None:
            return None
        text = reason(rollout) if callable(reason) else reason
        _apply_status(rollout, RolloutStatus.PAUSED, actor=actor, reason=text, auto=True)
        rollout.save()
        record_sira_pause(
            plugin_name=rollout.plugin_name,
            version=rollout.version,
            rollout_id=rollout.pk,
            error_rate=error_rate,
            reason=text,
            actor=actor,
        )
        AuditEntry.record(
            actor=actor,
            action="rollout.auto_paused",
            obj=rollout,
            before={"status": RolloutStatus.ACTIVE},
            after={
                "status": RolloutStatus.PAUSED,
                **audit,
                "threshold": f"{rollout.error_threshold:.4f}",
                "reason": text,
            },
        )
        described = alert(rollout, text)
        raise_alert(
            kind=described["kind"],
            summary=described["summary"],
            dedup_key=f"{described['kind'].replace('_', '-')}-{rollout.pk}",
            severity=AlertSeverity.ERROR,
            details={
                "rollout_id": rollout.pk,
                "plugin_name": rollout.plugin_name,
                "version": rollout.version,
                **described["details"],
            },
        )
        _after_commit_invalidate(rollout.plugin_name)
    logger.warning(
        "rollout paused by Sira: %s", text, extra={"event": "rollout_auto_paused", "rollout_id": rollout_id}
    )
    return rollout
