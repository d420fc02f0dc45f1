"""The rollback dashboard: KPIs against their targets, success by plugin, a 14-day chart, history.

The page and its live fragment share one context builder. The fragment is re-fetched every
few seconds (htmx); it answers 204 when nothing changed since the version the browser holds,
so an idle dashboard costs one cheap query per poll and the table under the reader's cursor
is not replaced for nothing.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import format_html_join

from molam_upgrades.web import OpsPageMixin

from . import aggregates, history
from .filtersets import RollbackHistoryFilterSet
from .models import FLEET_MERCHANT_ID, RollbackHistory, RollbackTotals
from .services import kpis, rollback_stats

PAGE_SIZE = 25
# A fleet can have hundreds of plugins: the page shows those with the lowest success rate (the
# ones to look at); GET rollback/stats lists them all.
PLUGINS_SHOWN = 20
POLL_SECONDS = 5

# Chart geometry (SVG user units); the SVG scales to its container's width.
CHART_W, CHART_H = 720, 200
CHART_TOP, CHART_BOTTOM, CHART_LEFT = 12, 28, 34


def format_duration(ms: int | float | None) -> str:
    """1500 → "1.5 s", 850 → "850 ms"; the seed's target is expressed in seconds."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{round(ms)} ms"
    return f"{ms / 1000:.1f} s"


@dataclass
class HistoryRow:
    """A rollback as the history table shows it."""

    rollback: RollbackHistory

    @property
    def is_fleet(self) -> bool:
        """Sira pauses are fleet-wide events recorded under the nil merchant id."""
        return self.rollback.merchant_id == FLEET_MERCHANT_ID

    @property
    def duration(self) -> str:
        return format_duration(self.rollback.duration_ms)

    @property
    def error_rate_pct(self):
        rate = self.rollback.error_rate_detected
        return rate * 100 if rate is not None else None


def worst_plugins(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The PLUGINS_SHOWN plugins with the lowest success rate (then the most rollbacks), by name."""
    worst = sorted(rows, key=lambda r: (r["success_rate_pct"], -r["total_rollbacks"]))[:PLUGINS_SHOWN]
    return sorted(worst, key=lambda r: r["plugin_name"])


def kpi_rows(kpi: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The seed's "Key Metrics", each with its value and target as a person reads them."""

    def pct(v):
        return f"{v:.1f} %" if v is not None else "—"

    def days(v):
        return f"{v:.1f} days" if v is not None else "—"

    comparison = {">": ">", "<": "<", "<=": "≤"}
    rate, dur, failed, velocity, per_day = (
        kpi["rollback_success_rate_pct"],
        kpi["avg_rollback_duration_ms"],
        kpi["failed_rollbacks_7d"],
        kpi["rollout_velocity_days"],
        kpi["rollbacks_per_day"],
    )
    return [
        {
            "label": "Rollback success rate",
            "value": pct(rate["value"]),
            "target": f"target {comparison[rate['comparison']]} {rate['target']:g} %",
            "ok": rate["ok"],
        },
        {
            "label": "Average rollback duration",
            "value": format_duration(dur["value"]),
            "target": f"target {comparison[dur['comparison']]} {dur['target'] / 1000:g} s",
            "ok": dur["ok"],
        },
        {
            "label": "Failed rollbacks, 7 days",
            "value": str(failed["value"]),
            "target": f"target {comparison[failed['comparison']]} {failed['target']}",
            "ok": failed["ok"],
        },
        {
            "label": "Rollout velocity (to 100 %)",
            "value": days(velocity["value"]),
            "target": f"target {comparison[velocity['comparison']]} {velocity['target']:g} days",
            "ok": velocity["ok"],
        },
        {
            "label": "Rollbacks per day, 14 days",
            "value": f"{per_day['value']:g}",
            "target": "no target: watch the trend",
            "ok": None,
        },
    ]


def chart(series: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacked bars (successful below, failed above) for the per-day series, drawn as SVG."""
    peak = max((d["successful"] + d["failed"] for d in series), default=0)
    # A round top for the axis: 4, 10, 20, 50 … so the grid lines read as whole numbers.
    top = next((n for n in (4, 10, 20, 50, 100, 200, 500, 1000) if n >= peak), peak or 4)
    plot_h = CHART_H - CHART_TOP - CHART_BOTTOM
    slot = (CHART_W - CHART_LEFT) / max(len(series), 1)
    bar_w = slot * 0.62
    bars = []
    for i, day in enumerate(series):
        ok_h = plot_h * day["successful"] / top
        fail_h = plot_h * day["failed"] / top
        x = CHART_LEFT + i * slot + (slot - bar_w) / 2
        base = CHART_TOP + plot_h
        date = day["date"]
        when = datetime.date.fromisoformat(date)
        bars.append(
            {
                "date": date,
                "label": f"{when:%b} {when.day}",
                # Every other day, counting back from today so today is always labelled.
                "show_label": (len(series) - 1 - i) % 2 == 0,
                "x": round(x, 1),
                "w": round(bar_w, 1),
                "cx": round(x + bar_w / 2, 1),
                "ok_y": round(base - ok_h, 1),
                "ok_h": round(ok_h, 1),
                "fail_y": round(base - ok_h - fail_h, 1),
                "fail_h": round(fail_h, 1),
                "successful": day["successful"],
                "failed": day["failed"],
            }
        )
    grid = [{"value": round(top * f), "y": round(CHART_TOP + plot_h * (1 - f), 1)} for f in (0, 0.5, 1)]
    return {
        "bars": bars,
        "grid": grid,
        "width": CHART_W,
        "height": CHART_H,
        "left": CHART_LEFT,
        "label_y": CHART_H - 8,
        "empty": peak == 0,
    }


def fingerprint() -> str:
    """Changes when a rollback starts or completes, and at least once a minute (rolling windows).

    From the aggregates and the newest row (an index lookup): the same cost at any history size.
    """
    started, completed, newest = aggregates.history_version()
    minute = timezone.now().strftime("%Y%m%d%H%M")
    raw = f"{started}|{completed}|{newest}|{minute}"
    return hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()[:16]


class RollbackDashboardMixin(OpsPageMixin):
    """The context the page and its live fragment share."""

    def dashboard_context(self, request: HttpRequest, since: str | None = None) -> dict[str, Any]:
        params = request.GET.copy()
        params.pop("since", None)
        filterset = RollbackHistoryFilterSet(params, queryset=RollbackHistory.objects.all())
        # An invalid filter (a malformed merchant id) shows its error and an empty table.
        rows = filterset.qs if filterset.is_valid() else RollbackHistory.objects.none()
        # Keyset pages (``before``): each costs the rows it shows, however deep in the history.
        try:
            cursor = history.parse_cursor(params["before"]) if params.get("before") else None
        except history.BadCursor:
            cursor = None  # a mangled link shows the newest page
        shown, older = history.page_before(rows, cursor, PAGE_SIZE)
        stats = rollback_stats()
        kpi = kpis(stats)
        page_params = params.copy()
        page_params.pop("before", None)
        page_params.pop("page", None)
        return self.page_context(
            stats=stats,
            kpis=kpi_rows(kpi),
            per_plugin=[
                {**row, "avg_duration": format_duration(row["avg_duration_ms"])}
                for row in worst_plugins(stats["success_rate_by_plugin"])
            ],
            more_plugins=max(0, len(stats["success_rate_by_plugin"]) - PLUGINS_SHOWN),
            overall_avg_duration=format_duration(stats["avg_duration_ms"]),
            chart=chart(kpi["rollbacks_per_day"]["series"]),
            filterset=filterset,
            filtered=any(params.get(k) for k in ("merchant_id", "plugin_name")),
            older=older,
            is_first_page=cursor is None,
            history=[HistoryRow(r) for r in shown],
            query=params.urlencode(),
            page_query=page_params.urlencode(),
            poll_seconds=POLL_SECONDS,
            since=since or fingerprint(),
            nav="rollbacks",
        )


class RollbackDashboardView(RollbackDashboardMixin):
    """``/ops/rollback-dashboard``."""

    def get(self, request: HttpRequest) -> HttpResponse:
        context = self.dashboard_context(request)
        context["plugin_options"] = plugin_options(request.GET.get("plugin_name", ""))
        return render(request, "rollbacks/rollback_dashboard.html", context)


def plugin_options(selected: str) -> str:
    """The plugin filter's ``<option>`` elements, one per plugin that has rollbacks.

    Written here rather than by a template loop: a fleet has ~1,000 plugins, and the template
    engine's per-iteration lookups cost ~10 ms a page. ``format_html_join`` escapes each name.
    """
    names = RollbackTotals.objects.order_by("plugin_name").values_list("plugin_name", flat=True).distinct()
    return format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        ((name, " selected" if name == selected else "", name) for name in names),
    )


class RollbackDashboardLiveView(RollbackDashboardMixin):
    """The live fragment: cards, targets, chart and table; 204 when nothing changed."""

    def get(self, request: HttpRequest) -> HttpResponse:
        current = fingerprint()
        if request.GET.get("since") == current:
            return HttpResponse(status=204)
        response = render(
            request, "rollbacks/partials/live.html", self.dashboard_context(request, since=current)
        )
        response["Cache-Control"] = "no-store"
        return response
