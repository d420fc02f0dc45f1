"""The canary panel: a context function and partial any rollout page can include, and a page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from molam_upgrades.web import OpsPageMixin
from rollouts.models import Rollout

from . import services
from .models import CanaryAnalysis

# Sira judges every 5 minutes; a page older than that recomputes (the result is stored, so
# /metrics and the API show the same figures).
FRESH_FOR = timedelta(minutes=5)


def canary_context(rollout: Rollout) -> dict[str, Any]:
    """What ``payments/partials/canary.html`` needs for a rollout: ``{"canary": {...}}``."""
    analysis = CanaryAnalysis.objects.filter(rollout_id=rollout.pk).first()
    if rollout.is_open and (analysis is None or analysis.computed_at < timezone.now() - FRESH_FOR):
        analysis = services.analyse_rollout(rollout)
    if analysis is None:
        return {"canary": None}
    figures = analysis.figures
    success, latency = figures["success_rate"], figures["latency"]
    return {
        "canary": {
            "analysis": analysis,
            "verdict": analysis.verdict,
            "success": success,
            "latency": latency,
            "hours": figures.get("hours", 0),
            "excluded_merchants": figures.get("excluded_merchants", 0),
            "rows": [
                ("Merchants", figures["canary"]["merchants"], figures["baseline"]["merchants"], ""),
                ("Payments attempted", figures["canary"]["attempted"], figures["baseline"]["attempted"], ""),
                ("Payments failed", figures["canary"]["failed"], figures["baseline"]["failed"], ""),
                (
                    "Success rate",
                    _pct(success["canary_rate"]),
                    _pct(success["baseline_rate"]),
                    success["verdict"],
                ),
                (
                    "p95 latency (median of merchants)",
                    _ms(latency["canary_p95_median"]),
                    _ms(latency["baseline_p95_median"]),
                    latency["verdict"],
                ),
            ],
        }
    }


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f} %"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


class CanaryPageView(OpsPageMixin):
    """``/ops/rollouts/<id>/canary``: canary versus baseline for one rollout."""

    def get(self, request: HttpRequest, rollout_id: int) -> HttpResponse:
        rollout = get_object_or_404(Rollout, pk=rollout_id)
        return render(
            request,
            "payments/canary_page.html",
            self.page_context(rollout=rollout, **canary_context(rollout)),
        )
