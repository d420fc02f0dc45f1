"""Dashboard pages of the plans app.

- the live fragment of ``/ops/rollout-control`` (cards or a compact table, re-fetched by htmx;
  204 when nothing changed since the version the browser holds),
- the dry-run preview shown before "Start rollout",
- ``/ops/rollouts/<id>``: the plan and where it stands, the hourly error-rate timeline against
  the threshold (server-side SVG), merchants by version, the audit trail and the pauses,
- the plan actions posted from that page (follow a template, hold, release, skip, back, stop).

Every action calls the same ``plans.services`` function as the API, with the person as actor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.db import connection
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import TruncHour
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from molam_upgrades.exceptions import DomainError
from molam_upgrades.models import AuditEntry
from molam_upgrades.web import OpsPageMixin
from payments.views import canary_context
from rollbacks.choices import ERROR_STATUSES, UpgradeStatus
from rollbacks.models import UpgradeLog
from rollouts.choices import OPEN_STATES
from rollouts.forms import RolloutCreateForm
from rollouts.metrics import attach_error_rates, error_rate
from rollouts.models import Rollout
from rollouts.views import RolloutControlView

from . import services
from .choices import DAY_NAMES
from .models import PlanTemplate
from .progress import pct, progress_for
from .simulate import simulate

POLL_SECONDS = 5
# Above this many open rollouts the control page shows a compact table instead of cards.
COMPACT_ABOVE = 12
TIMELINE_HOURS = 48
COMMON_ZONES = ["UTC", "Africa/Dakar", "Africa/Abidjan", "Africa/Lagos", "Africa/Nairobi", "Europe/Paris"]


# --- /ops/rollout-control, live --------------------------------------------------------------


def control_fingerprint() -> str:
    """Changes when an open rollout, its plan or its reports change, and once a minute."""
    last_report = (
        UpgradeLog.objects.filter(
            plugin_name=OuterRef("plugin_name"),
            to_version=OuterRef("version"),
            created_at__gte=OuterRef("created_at"),
        )
        .order_by("-created_at")
        .values("created_at")[:1]
    )
    # One statement: each open rollout, its newest report and its plan's position (LEFT JOIN).
    rows = list(
        Rollout.objects.filter(status__in=OPEN_STATES)
        .annotate(last_report=Subquery(last_report))
        .order_by("pk")
        .values_list(
            "pk",
            "status",
            "rollout_percentage",
            "updated_at",
            "last_report",
            "plan__current_stage",
            "plan__held",
            "plan__finished_at",
            "plan__updated_at",
        )
    )
    minute = timezone.now().strftime("%Y%m%d%H%M")
    raw = repr((rows, minute))
    return hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()[:16]


def control_view_mode(request: HttpRequest, count: int) -> str:
    mode = request.GET.get("view")
    if mode in ("cards", "table"):
        return mode
    return "table" if count > COMPACT_ABOVE else "cards"


class RolloutControlLiveView(RolloutControlView):
    """``/ops/rollout-control/live``: the page's cards (or table), built by the page's own code."""

    template_name = "plans/partials/control_live.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        current = control_fingerprint()
        if request.GET.get("since") == current:
            return HttpResponse(status=204)
        self.live_since = current
        response = self.render_page(None)
        response["Cache-Control"] = "no-store"
        return response

    def page_context(self, **extra: Any) -> dict[str, Any]:
        return super().page_context(live_since=self.live_since, **extra)


# --- dry-run preview -----------------------------------------------------------------------


class SimulatePreviewView(OpsPageMixin):
    """POST ``/ops/rollout-control/preview``: what the start form would select, nothing written."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = RolloutCreateForm(request.POST)
        context: dict[str, Any] = {"form": form}
        if form.is_valid():
            fields = form.to_model_fields()
            context["result"] = simulate(
                plugin_name=fields["plugin_name"],
                version=fields["version"],
                percentage=fields["rollout_percentage"],
                strategy=fields["rollout_strategy"],
                target_countries=fields["target_countries"],
                target_tiers=fields["target_tiers"],
            )
        return render(request, "plans/partials/preview.html", context)


# --- /ops/rollouts/<id> --------------------------------------------------------------------

CHART_W, CHART_H = 720, 180
CHART_TOP, CHART_BOTTOM, CHART_LEFT = 12, 26, 44


@dataclass
class HourPoint:
    hour: datetime
    total: int
    failed: int

    @property
    def rate(self) -> Decimal:
        return error_rate(self.total, self.failed)


def hourly_error_rates(rollout: Rollout, now: datetime, hours: int = TIMELINE_HOURS) -> list[HourPoint]:
    """Reports per hour for the rollout's version since it started, the last ``hours`` hours."""
    end = now.replace(minute=0, second=0, microsecond=0)
    start = max(
        rollout.created_at.replace(minute=0, second=0, microsecond=0), end - timedelta(hours=hours - 1)
    )
    rows = (
        UpgradeLog.objects.filter(
            plugin_name=rollout.plugin_name,
            to_version=rollout.version,
            created_at__gte=max(start, rollout.created_at),
        )
        .annotate(hour=TruncHour("created_at"))
        .values("hour")
        .annotate(total=Count("pk"), failed=Count("pk", filter=Q(status__in=ERROR_STATUSES)))
        .order_by("hour")
    )
    counts = {row["hour"]: (row["total"], row["failed"]) for row in rows}
    points, hour = [], start
    while hour <= end:
        total, failed = counts.get(hour, (0, 0))
        points.append(HourPoint(hour, total, failed))
        hour += timedelta(hours=1)
    return points


def timeline_chart(points: list[HourPoint], threshold: Decimal) -> dict[str, Any]:
    """Bars of the hourly error rate and a dashed line at the threshold, as SVG coordinates."""
    peak = max([p.rate for p in points if p.total] + [threshold * 2])
    top = min(Decimal(1), peak)
    # A round top for the axis so grid labels read as whole percentages.
    for candidate in (
        Decimal("0.02"),
        Decimal("0.05"),
        Decimal("0.1"),
        Decimal("0.2"),
        Decimal("0.5"),
        Decimal(1),
    ):
        if candidate >= top:
            top = candidate
            break
    plot_h = CHART_H - CHART_TOP - CHART_BOTTOM
    slot = (CHART_W - CHART_LEFT) / max(len(points), 1)
    bar_w = max(1.0, slot * 0.7)
    base = CHART_TOP + plot_h
    bars = []
    for i, point in enumerate(points):
        height = float(plot_h * point.rate / top) if point.total else 0.0
        x = CHART_LEFT + i * slot + (slot - bar_w) / 2
        bars.append(
            {
                "x": round(x, 1),
                "w": round(bar_w, 1),
                "y": round(base - max(height, 1.5 if point.total else 0), 1),
                "h": round(max(height, 1.5 if point.total else 0), 1),
                "bad": point.total > 0 and point.rate > threshold,
                "empty": point.total == 0,
                "title": f"{point.hour:%a %H:00} UTC: {point.failed} of {point.total} failed or rolled back"
                f" ({point.rate * 100:.2f} %)"
                if point.total
                else f"{point.hour:%a %H:00} UTC: no reports",
                "label": f"{point.hour:%H:00}" if point.hour.hour % 6 == 0 else "",
                "cx": round(x + bar_w / 2, 1),
            }
        )
    threshold_y = round(base - float(plot_h * threshold / top), 1)
    grid = [{"y": round(base - plot_h * f, 1), "label": f"{float(top) * 100 * f:g} %"} for f in (0, 0.5, 1)]
    return {
        "bars": bars,
        "grid": grid,
        "threshold_y": threshold_y,
        "threshold_label_y": round(max(threshold_y - 4, CHART_TOP + 8), 1),
        "threshold_label": f"threshold {threshold * 100:.2f} %",
        "width": CHART_W,
        "height": CHART_H,
        "left": CHART_LEFT,
        "label_y": CHART_H - 8,
        "reports": sum(p.total for p in points),
        "hours": len(points),
    }


def merchants_by_version(plugin_name: str, limit: int = 12) -> list[dict[str, Any]]:
    """Each merchant once, on the version its latest report leaves it on."""
    latest = UpgradeLog.objects.filter(plugin_name=plugin_name)
    if connection.vendor == "postgresql":
        rows = latest.order_by("merchant_id", "-created_at").distinct("merchant_id")
    else:  # the embedded SQLite default: the same answer, computed in Python
        rows = latest.order_by("merchant_id", "-created_at")
    counts: dict[str, int] = {}
    seen = set()
    for merchant_id, status, from_version, to_version, rollback_version in rows.values_list(
        "merchant_id", "status", "from_version", "to_version", "rollback_version"
    ):
        if merchant_id in seen:
            continue
        seen.add(merchant_id)
        version = to_version if status == UpgradeStatus.SUCCESS else (rollback_version or from_version)
        counts[version] = counts.get(version, 0) + 1
    total = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [
        {"version": v, "merchants": n, "share": round(100 * n / total, 1) if total else 0} for v, n in ordered
    ]


@dataclass
class TrailRow:
    entry: AuditEntry

    @property
    def reason(self) -> str:
        after = self.entry.after or {}
        return str(after.get("reason") or after.get("paused_reason") or after.get("held_reason") or "")

    @property
    def change(self) -> str:
        before, after = self.entry.before or {}, self.entry.after or {}
        if "rollout_percentage" in after:
            old = before.get("rollout_percentage")
            return f"{pct(Decimal(old)) if old else '—'} % → {pct(Decimal(after['rollout_percentage']))} %"
        if "status" in after and before.get("status") != after.get("status"):
            return f"{before.get('status') or '—'} → {after['status']}"
        if "stage" in after:
            return f"stage {before.get('stage', '—')} → {after['stage']}"
        return ""


@dataclass
class Pause:
    at: datetime
    by: str
    reason: str
    sira: bool
    resumed_at: datetime | None


def pauses_from(trail: list[AuditEntry]) -> list[Pause]:
    """Each pause with who, why, and when it was resumed (from the audit trail, oldest first)."""
    pauses: list[Pause] = []
    for entry in sorted(trail, key=lambda e: e.pk):
        after = entry.after or {}
        if entry.action in ("rollout.paused", "rollout.auto_paused"):
            reason = after.get("reason") or after.get("paused_reason") or ""
            pauses.append(
                Pause(entry.created_at, entry.actor, reason, entry.action == "rollout.auto_paused", None)
            )
        elif entry.action == "rollout.resumed" and pauses and pauses[-1].resumed_at is None:
            pauses[-1].resumed_at = entry.created_at
    return list(reversed(pauses))


class RolloutDetailView(OpsPageMixin):
    """``/ops/rollouts/<id>``."""

    def get(self, request: HttpRequest, rollout_id: int) -> HttpResponse:
        rollout = Rollout.objects.filter(pk=rollout_id).first()
        if rollout is None:
            raise Http404("No such rollout.")
        attach_error_rates([rollout])
        now = timezone.now()
        progress = progress_for([rollout], now).get(rollout.pk)
        trail = list(
            AuditEntry.objects.filter(object_type="rollouts.rollout", object_id=str(rollout.pk)).order_by(
                "-id"
            )[:200]
        )
        rate = rollout.health.error_rate
        context = self.page_context(
            rollout=rollout,
            error_rate_pct=rate * 100,
            threshold_pct=rollout.error_threshold * 100,
            above_threshold=rollout.error_rate_above_threshold,
            progress=progress,
            chart=timeline_chart(hourly_error_rates(rollout, now), rollout.error_threshold),
            versions=merchants_by_version(rollout.plugin_name),
            trail=[TrailRow(e) for e in trail],
            pauses=pauses_from(trail),
            templates=list(PlanTemplate.objects.order_by("name")),
            zones=COMMON_ZONES,
            day_names=DAY_NAMES,
            nav="rollouts",
            **canary_context(rollout),
        )
        return render(request, "plans/rollout_detail.html", context)


class PlanActionView(OpsPageMixin):
    """POST ``/ops/rollouts/<id>/plan/<action>``: operators only (``OpsPageMixin``)."""

    http_method_names = ["post"]
    action: str = ""

    def post(self, request: HttpRequest, rollout_id: int) -> HttpResponse:
        if not Rollout.objects.filter(pk=rollout_id).exists():
            raise Http404("No such rollout.")
        reason = (request.POST.get("reason") or "").strip()[:2000]
        try:
            message = getattr(self, f"do_{self.action}")(rollout_id, reason)
        except DomainError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, message)
        return redirect(reverse("rollout-detail", args=[rollout_id]))

    def do_attach(self, rollout_id: int, reason: str) -> str:
        post = self.request.POST
        days = [d for d in post.getlist("days") if d in DAY_NAMES]
        windows = None
        if days or post.get("start") or post.get("end"):
            windows = [{"days": days, "start": post.get("start", ""), "end": post.get("end", "")}]
        plan = services.attach_plan(
            rollout_id,
            actor=self.actor,
            template=post.get("template") or None,
            timezone_name=(post.get("timezone") or "UTC").strip(),
            windows=windows,
        )
        return f"The rollout now follows {plan.template_name or 'its plan'}."

    def do_detach(self, rollout_id: int, reason: str) -> str:
        services.detach_plan(rollout_id, actor=self.actor)
        return "The rollout no longer follows a plan; it moves only by hand."

    def do_hold(self, rollout_id: int, reason: str) -> str:
        services.hold_plan(rollout_id, actor=self.actor, reason=reason)
        return "Automatic progression is held; the rollout keeps its percentage."

    def do_release(self, rollout_id: int, reason: str) -> str:
        services.release_plan(rollout_id, actor=self.actor)
        return "The plan moves on by itself again when its stage is ready."

    def do_skip(self, rollout_id: int, reason: str) -> str:
        plan = services.skip_stage(rollout_id, actor=self.actor, reason=reason)
        return f"Skipped to stage {plan.current_stage + 1}."

    def do_back(self, rollout_id: int, reason: str) -> str:
        plan = services.back_stage(rollout_id, actor=self.actor, reason=reason)
        return f"Back to stage {plan.current_stage + 1}."
