"""``/ops/rollback-approvals``: four-eyes decisions on forced rollbacks of high-value merchants.

Every ops role may look; only ``pay_admin`` gets the buttons, and never on a rollback they
forced themselves (the service refuses it too, so a hand-made POST gets the same answer).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from merchants.models import Merchant
from molam_upgrades.auth import user_roles
from molam_upgrades.choices import Role
from molam_upgrades.exceptions import DomainError
from molam_upgrades.web import OpsPageMixin

from . import approvals
from .models import RollbackHistory

RECENT = 20


class RollbackApprovalsView(OpsPageMixin):
    def get(self, request: HttpRequest) -> HttpResponse:
        waiting = list(approvals.awaiting_approval()[:200])
        recent = list(
            RollbackHistory.objects.filter(approval_status__isnull=False)
            .exclude(approval_status="awaiting_approval")
            .order_by("-decided_at", "-created_at")[:RECENT]
        )
        names = dict(
            Merchant.objects.filter(pk__in={r.merchant_id for r in waiting + recent}).values_list(
                "pk", "name"
            )
        )
        can_decide = Role.PAY_ADMIN in user_roles(request.user)
        context: dict[str, Any] = self.page_context(
            nav="approvals",
            waiting=[_row(r, names, can_decide, self.actor) for r in waiting],
            recent=[_row(r, names, False, self.actor) for r in recent],
            can_decide=can_decide,
        )
        return render(request, "rollbacks/approvals.html", context)


def _row(rollback: RollbackHistory, names: dict, can_decide: bool, actor: str) -> dict[str, Any]:
    own = rollback.initiated_by == actor
    return {
        "rollback": rollback,
        "merchant": names.get(rollback.merchant_id, ""),
        "own": own,
        "can_decide": can_decide and not own,
    }


class RollbackDecisionView(OpsPageMixin):
    """POST approve / reject, then back to the list (post/redirect/get)."""

    decision = "approve"

    def post(self, request: HttpRequest, rollback_id) -> HttpResponse:
        if Role.PAY_ADMIN not in user_roles(request.user):
            raise PermissionDenied("Only pay_admin may approve or reject a forced rollback.")
        reason = (request.POST.get("reason") or "").strip()[:2000]
        decide = approvals.approve if self.decision == "approve" else approvals.reject
        try:
            rollback = decide(rollback_id, actor=self.actor, reason=reason)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            done = (
                "approved: the agent performs it at its next run"
                if self.decision == "approve"
                else "rejected"
            )
            messages.success(
                request,
                f"Rollback of {rollback.plugin_name} {rollback.from_version} → {rollback.to_version} {done}.",
            )
        return redirect("rollback-approvals")
