"""Upgrade reports seen from a rollout: its merchant counts and error rate, from the aggregates.

This app owns the upgrade reports, so the one function for "a rollout's merchant counts and
error rate" lives here: :func:`rollout_error_rates`. Sira (beat, HTTP, command), the rollout
pages and API, ``/metrics`` and the rollout plans' stage gates all call it; the SQL functions
``get_rollout_merchant_counts`` / ``get_rollout_error_rate`` read the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum

from molam_upgrades.sira_rules import MerchantCounts, error_rate, wilson_lower_bound

from .aggregates import COUNTERS
from .models import RolloutReportCounts

__all__ = [
    "RolloutErrorRate",
    "attach_error_rates",
    "error_rate",
    "rollout_error_rate",
    "rollout_error_rates",
]


@dataclass(frozen=True)
class RolloutErrorRate:
    """A rollout's merchant counts and error rate, as Sira judges it (SPEC "Rules")."""

    rollout_id: int
    merchants: int = 0  # cohort merchants that reported, each once
    merchants_failed: int = 0  # … whose latest outcome is failed or rolled back
    merchants_upgraded: int = 0  # … whose latest outcome is success
    reports: int = 0  # reports from cohort merchants
    reports_failed: int = 0
    reports_outside_cohort: int = 0  # stored and shown, never counted

    @property
    def counts(self) -> MerchantCounts:
        return MerchantCounts(self.merchants, self.merchants_failed, self.merchants_upgraded)

    @property
    def error_rate(self) -> Decimal:
        return error_rate(self.merchants, self.merchants_failed)

    @property
    def lower_bound(self) -> float:
        """Wilson 95 % lower bound of the failure rate."""
        return wilson_lower_bound(self.merchants_failed, self.merchants)


def rollout_error_rates(rollout_ids: Iterable[int]) -> dict[int, RolloutErrorRate]:
    """THE function for "a rollout's merchant counts and error rate": Sira (beat, HTTP, command),
    the rollout pages, the API, ``/metrics`` and rollout-plan stage gates all read it.

    One query over at most ``STRIPES`` rows per rollout, whatever the history.
    """
    ids = list(rollout_ids)
    rows = (
        RolloutReportCounts.objects.filter(rollout_id__in=ids)
        .values("rollout_id")
        .annotate(**{f"sum_{name}": Sum(name) for name in COUNTERS})
        .order_by()
    )
    found = {
        row["rollout_id"]: RolloutErrorRate(row["rollout_id"], **{n: int(row[f"sum_{n}"]) for n in COUNTERS})
        for row in rows
    }
    return {pk: found.get(pk, RolloutErrorRate(pk)) for pk in ids}


def rollout_error_rate(rollout_id: int) -> RolloutErrorRate:
    return rollout_error_rates([rollout_id])[rollout_id]


def attach_error_rates(rollouts: list) -> list:
    """Give each rollout its ``health`` (a :class:`RolloutErrorRate`) for pages and serializers."""
    rates = rollout_error_rates(r.pk for r in rollouts)
    for rollout in rollouts:
        rollout.__dict__["health"] = rates[rollout.pk]  # fills Rollout.health (a cached_property)
    return rollouts
