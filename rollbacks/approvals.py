"""Four-eyes rollbacks: an operator-forced rollback of a high-value merchant needs a second person.

* ``initiate_rollback`` asks ``after_forced_rollback``: for a merchant flagged ``high_value`` in
  the registry the rollback is created ``awaiting_approval`` (the agent does not see it); for
  any other merchant nothing changes, except that the merchant is told it is coming.
* A *different* person holding ``pay_admin`` approves or rejects it (API and dashboard call
  ``approve`` / ``reject`` here); each step is an audit entry.
* A request waits ``ROLLBACK_APPROVAL_TTL_HOURS`` for a decision, and an approved rollback as
  long for the agent; then it expires (``expire_approvals``, every minute) and is never handed
  out: ``rollback/pending`` only returns rows matching ``executable()``. The agent refuses a
  forced rollback older than its ``forced_rollback_max_age_s`` (24 h by default) counted from
  ``created_at``, so keep twice the TTL below that.
* The row is never completed by a rejection or an expiry (completed rows are immutable and
  counted in the success rates); it stays open with its decision recorded.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from merchants import services as merchant_services
from merchants.choices import NoticeKind
from merchants.models import Merchant
from molam_upgrades.exceptions import Conflict, Forbidden, NotFound
from molam_upgrades.models import AuditEntry

from .choices import CLOSED_APPROVAL_STATES, ApprovalStatus, RollbackTrigger
from .models import RollbackHistory

logger = logging.getLogger("molam.rollbacks")


def ttl() -> timedelta:
    return timedelta(hours=float(getattr(settings, "ROLLBACK_APPROVAL_TTL_HOURS", 4)))


def executable(now=None) -> Q:
    """Rollbacks an agent may perform: no approval needed, or approved and not expired."""
    now = now or timezone.now()
    return Q(approval_status__isnull=True) | Q(
        approval_status=ApprovalStatus.APPROVED, approval_expires_at__gt=now
    )


def after_forced_rollback(rollback: RollbackHistory, *, actor: str) -> None:
    """Inside ``initiate_rollback``'s transaction: hold a high-value merchant's rollback for approval,
    otherwise tell the merchant it is coming."""
    if rollback.rollback_trigger != RollbackTrigger.OPERATOR_FORCED:
        return
    merchant = Merchant.objects.filter(pk=rollback.merchant_id).first()
    if merchant is None or not merchant.high_value:
        _notify(rollback, merchant)
        return
    now = timezone.now()
    rollback.approval_status = ApprovalStatus.AWAITING
    rollback.approval_expires_at = now + ttl()
    rollback.save(update_fields=["approval_status", "approval_expires_at"])
    AuditEntry.record(
        actor=actor,
        action="rollback.approval_requested",
        obj=rollback,
        after={
            "approval_status": ApprovalStatus.AWAITING,
            "approval_expires_at": rollback.approval_expires_at.isoformat(),
            "merchant": merchant.name,
        },
    )


def check_completable(rollback: RollbackHistory) -> None:
    """A rollback that was never approved cannot be reported as performed (409)."""
    if rollback.approval_status in (ApprovalStatus.AWAITING, ApprovalStatus.REJECTED) or (
        rollback.approval_status == ApprovalStatus.EXPIRED and rollback.approved_at is None
    ):
        raise Conflict(
            f"This rollback was never approved ({rollback.approval_status}); the agent must not perform it."
        )


def _decide(rollback_id, *, actor: str, status: str, reason: str) -> RollbackHistory:
    with transaction.atomic():
        rollback = RollbackHistory.objects.select_for_update().filter(pk=rollback_id).first()
        if rollback is None:
            raise NotFound(f"No rollback {rollback_id}.")
        if rollback.approval_status != ApprovalStatus.AWAITING:
            state = rollback.approval_status or "not subject to approval"
            raise Conflict(f"This rollback is not awaiting approval ({state}).")
        now = timezone.now()
        if rollback.approval_expires_at is not None and rollback.approval_expires_at <= now:
            raise Conflict(
                "This approval request has expired; force the rollback again if it is still needed."
            )
        if actor == rollback.initiated_by:
            # Four eyes: the person who forced the rollback cannot also be the one who lets it run.
            raise Forbidden("The person who forced this rollback cannot approve or reject it.")
        before = {"approval_status": rollback.approval_status}
        rollback.approval_status = status
        rollback.decided_by = actor
        rollback.decided_at = now
        rollback.decision_reason = reason or None
        fields = ["approval_status", "decided_by", "decided_at", "decision_reason"]
        if status == ApprovalStatus.APPROVED:
            rollback.approved_at = now
            rollback.approval_expires_at = now + ttl()  # the agent's window starts now
            fields += ["approved_at", "approval_expires_at"]
        rollback.save(update_fields=fields)
        AuditEntry.record(
            actor=actor,
            action=f"rollback.{status}",
            obj=rollback,
            before=before,
            after={
                "approval_status": status,
                "reason": reason or None,
                "requested_by": rollback.initiated_by,
                "approval_expires_at": rollback.approval_expires_at.isoformat()
                if status == "approved"
                else None,
            },
        )
        if status == ApprovalStatus.APPROVED:
            _notify(rollback, Merchant.objects.filter(pk=rollback.merchant_id).first())
    logger.info(
        "rollback %s %s by %s",
        rollback.rollback_id,
        status,
        actor,
        extra={"event": f"rollback_{status}", "rollback_id": str(rollback.rollback_id)},
    )
    return rollback


def approve(rollback_id, *, actor: str, reason: str = "") -> RollbackHistory:
    """A second person lets the rollback reach the agent (callers check the pay_admin role)."""
    return _decide(rollback_id, actor=actor, status=ApprovalStatus.APPROVED, reason=reason)


def reject(rollback_id, *, actor: str, reason: str = "") -> RollbackHistory:
    """A second person refuses the rollback; it is never handed to the agent."""
    return _decide(rollback_id, actor=actor, status=ApprovalStatus.REJECTED, reason=reason)


def expire_approvals(now=None) -> int:
    """Every minute: requests nobody decided, and approvals no agent picked up, expire (audited).

    Each row is claimed with a conditional UPDATE, so overlapping runs expire it once.
    """
    now = now or timezone.now()
    due = RollbackHistory.objects.filter(
        approval_status__in=(ApprovalStatus.AWAITING, ApprovalStatus.APPROVED),
        approval_expires_at__lte=now,
        completed_at__isnull=True,
    ).values_list("pk", "approval_status")
    expired = 0
    for pk, previous in list(due):
        with transaction.atomic():
            claimed = RollbackHistory.objects.filter(
                pk=pk, approval_status=previous, completed_at__isnull=True
            ).update(approval_status=ApprovalStatus.EXPIRED)
            if not claimed:
                continue
            AuditEntry.record(
                actor="system",
                action="rollback.approval_expired",
                object_type="rollbacks.rollbackhistory",
                object_id=str(pk),
                before={"approval_status": previous},
                after={"approval_status": ApprovalStatus.EXPIRED},
            )
            expired += 1
    return expired


def awaiting_approval():
    """Forced rollbacks waiting for a second person, oldest first."""
    return RollbackHistory.objects.filter(
        approval_status=ApprovalStatus.AWAITING, completed_at__isnull=True
    ).order_by("created_at")


def _notify(rollback: RollbackHistory, merchant: Merchant | None) -> None:
    """Tell the merchant a forced rollback is coming (no registry entry or contact: nobody to tell)."""
    if merchant is None:
        return
    merchant_services.create_notices(
        merchant,
        kind=NoticeKind.FORCED_ROLLBACK,
        dedup_key=f"rollback:{rollback.rollback_id}",
        plugin_name=rollback.plugin_name,
        from_version=rollback.from_version,
        to_version=rollback.to_version,
        detail=rollback.rollback_reason or "",
    )


__all__ = [
    "CLOSED_APPROVAL_STATES",
    "after_forced_rollback",
    "approve",
    "awaiting_approval",
    "check_completable",
    "executable",
    "expire_approvals",
    "reject",
]
