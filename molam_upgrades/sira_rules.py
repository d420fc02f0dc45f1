"""The Sira rules as plain functions: who counts, the error rate, and when a rollout is paused.

A rollout is judged on *merchants*, not requests (SPEC "Rules"): among the merchants the rollout
selected that reported on its plugin and version, each counts once, by its latest outcome.
Reports from merchants outside the cohort are stored and shown but never counted, so one
credential cannot pause a rollout by flooding ``failed`` reports, nor keep a bad one running by
flooding ``success``.

These functions hold no state and import nothing of Django. The aggregates maintained on write
apply :func:`merchant_change` to every report; the rebuild command and the tests apply
:func:`count_merchants` to the raw rows, and the two must agree. The SQL functions
(``get_rollout_error_rate``, ``auto_pause_failing_rollouts``) compute :func:`wilson_lower_bound`
and :func:`should_pause` the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

SUCCESS = "success"
ERROR_STATUSES = frozenset({"failed", "rolled_back"})
# z for a two-sided 95 % interval: the Wilson gate pauses only when even the low end of the
# failure rate's 95 % confidence interval is above the threshold.
WILSON_Z = 1.959963984540054


def is_error(status: str | None) -> bool:
    return status in ERROR_STATUSES


@dataclass(frozen=True)
class MerchantCounts:
    """What Sira judges a rollout on: merchants counted, and how many of them are failing."""

    merchants: int = 0  # cohort merchants that reported (each once)
    errors: int = 0  # … whose latest outcome is failed or rolled_back
    upgraded: int = 0  # … whose latest outcome is success

    def __add__(self, other: MerchantCounts) -> MerchantCounts:
        return MerchantCounts(
            self.merchants + other.merchants, self.errors + other.errors, self.upgraded + other.upgraded
        )


def merchant_change(previous: str | None, latest: str) -> MerchantCounts:
    """How the counts move when a cohort merchant whose latest outcome was ``previous`` (None: it
    had not reported) now reports ``latest``. Each component is -1, 0 or +1."""
    return MerchantCounts(
        merchants=0 if previous is not None else 1,
        errors=int(is_error(latest)) - int(is_error(previous)),
        upgraded=int(latest == SUCCESS) - int(previous == SUCCESS),
    )


@dataclass(frozen=True)
class Report:
    """One upgrade report as the counting rule sees it."""

    merchant_id: object
    status: str
    created_at: datetime
    in_cohort: bool
    id: object = None  # breaks ties between reports with the same timestamp (larger wins)


def latest_key(report: Report) -> tuple:
    return (report.created_at, str(report.id))


def count_merchants(reports: Iterable[Report]) -> MerchantCounts:
    """The reference count over raw reports of one rollout: cohort merchants by latest outcome."""
    latest: dict[object, Report] = {}
    for report in reports:
        if not report.in_cohort:
            continue
        seen = latest.get(report.merchant_id)
        if seen is None or latest_key(report) > latest_key(seen):
            latest[report.merchant_id] = report
    counts = MerchantCounts()
    for report in latest.values():
        counts += merchant_change(None, report.status)
    return counts


def error_rate(merchants: int, errors: int) -> Decimal:
    """``errors / merchants``, 0 when no merchant reported; 4 decimals (as the SQL function)."""
    if not merchants:
        return Decimal("0.0000")
    return (Decimal(errors) / Decimal(merchants)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def wilson_lower_bound(errors: int, merchants: int, z: float = WILSON_Z) -> float:
    """Lower end of the Wilson score interval for the failure rate (0 when nothing reported).

    Unlike the raw rate, it accounts for the sample size: 1 failure among 12 merchants (8.3 %)
    has a lower bound of 1.5 %, 6 among 50 (12 %) one of 5.6 %.
    """
    if merchants <= 0:
        return 0.0
    p = errors / merchants
    z2 = z * z
    centre = p + z2 / (2 * merchants)
    margin = z * math.sqrt(p * (1 - p) / merchants + z2 / (4 * merchants * merchants))
    return max(0.0, (centre - margin) / (1 + z2 / merchants))


def should_pause(
    counts: MerchantCounts, *, threshold: Decimal, min_sample_size: int, wilson_gate: bool = False
) -> bool:
    """The auto-pause rule: enough merchants, and a failure rate above the threshold (the raw
    rate, or with ``wilson_gate`` the Wilson 95 % lower bound of it)."""
    if counts.merchants < min_sample_size or counts.merchants == 0:
        return False
    if wilson_gate:
        return wilson_lower_bound(counts.errors, counts.merchants) > float(threshold)
    return error_rate(counts.merchants, counts.errors) > threshold
