"""``/metrics``: the canary verdict of each open rollout (registered in ``PaymentsConfig.ready``).

``molam_rollout_canary_verdict`` is a state set (one series per verdict, 1 for the current
one), so an alert rule reads ``molam_rollout_canary_verdict{verdict="fail"} == 1``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import OuterRef, Subquery
from prometheus_client.core import Metric

from molam_upgrades.exposition import GaugeFamily
from rollouts.choices import OPEN_STATES
from rollouts.models import Rollout

from .choices import Verdict
from .models import CanaryAnalysis

LABELS = ["rollout_id", "plugin", "version"]


def read(now: datetime) -> list[dict[str, Any]]:
    """The stored verdicts of active and paused rollouts, in one query (no history scan)."""
    rollout = Rollout.objects.filter(pk=OuterRef("rollout_id"))
    analyses = CanaryAnalysis.objects.filter(
        rollout_id__in=Rollout.objects.filter(status__in=OPEN_STATES).values("pk")
    ).annotate(
        plugin_name=Subquery(rollout.values("plugin_name")[:1]),
        version=Subquery(rollout.values("version")[:1]),
    )
    rows = []
    for analysis in analyses:
        figures = analysis.figures or {}
        success, latency = figures.get("success_rate", {}), figures.get("latency", {})
        rows.append(
            {
                "labels": [str(analysis.rollout_id), analysis.plugin_name, analysis.version],
                "verdict": analysis.verdict,
                "computed_at": analysis.computed_at.timestamp(),
                "success_rate": {
                    "canary": success.get("canary_rate"),
                    "baseline": success.get("baseline_rate"),
                },
                "p95": {
                    "canary": latency.get("canary_p95_median"),
                    "baseline": latency.get("baseline_p95_median"),
                },
                "p_value": {"success_rate": success.get("p_value"), "latency": latency.get("p_value")},
            }
        )
    return rows


def collect(rows: list[dict[str, Any]]) -> list[Metric]:
    verdict = GaugeFamily(
        "molam_rollout_canary_verdict",
        "Canary-versus-baseline payment verdict of a rollout (1 for the current verdict).",
        labels=[*LABELS, "verdict"],
    )
    computed = GaugeFamily(
        "molam_rollout_canary_computed_timestamp_seconds",
        "When the rollout's canary verdict was computed.",
        labels=LABELS,
    )
    success = GaugeFamily(
        "molam_rollout_payment_success_ratio",
        "Payment success rate over the canary's hours, canary and baseline.",
        labels=[*LABELS, "group"],
    )
    p95 = GaugeFamily(
        "molam_rollout_payment_p95_seconds",
        "Median of per-merchant p95 payment latency, canary and baseline.",
        labels=[*LABELS, "group"],
    )
    p_value = GaugeFamily(
        "molam_rollout_canary_p_value",
        "One-sided p-value of the canary test (success_rate: z-test, latency: Mann-Whitney U).",
        labels=[*LABELS, "test"],
    )
    for row in rows:
        labels = row["labels"]
        for value in Verdict.values:
            verdict.add_metric([*labels, value], 1.0 if row["verdict"] == value else 0.0)
        computed.add_metric(labels, row["computed_at"])
        for group in ("canary", "baseline"):
            if row["success_rate"][group] is not None:
                success.add_metric([*labels, group], row["success_rate"][group])
            if row["p95"][group] is not None:
                p95.add_metric([*labels, group], row["p95"][group] / 1000.0)
        for test, value in row["p_value"].items():
            if value is not None:
                p_value.add_metric([*labels, test], value)
    return [verdict, computed, success, p95, p_value]
