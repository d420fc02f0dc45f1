"""Dry-run: which known merchants a rollout would select, computed and never written.

Known merchants are those that have reported an upgrade of the plugin before (any version).
Each one is put through the decision endpoint's own cohort rule (``rollouts.cohort.in_cohort``:
targeting, then the sticky bucket), with the country and tier the merchant registry
(``merchants.Merchant``) holds for it. A merchant the registry does not know counts under
"unknown" and is never selected by a geo or tier rollout, as the decision endpoint would not
select a merchant that gives no country or tier.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from decimal import Decimal
from uuid import UUID

from django.apps import apps

from rollbacks.models import UpgradeLog
from rollouts.choices import RolloutStatus, RolloutStrategy
from rollouts.cohort import OpenRollout, as_number, in_cohort

UNKNOWN = "unknown"
SAMPLE_SIZE = 20


@dataclass(frozen=True)
class Candidate:
    merchant_id: UUID
    country: str
    tier: str


def known_merchants(plugin_name: str) -> list[Candidate]:
    """Merchants that reported on ``plugin_name`` before, with their registry country and tier."""
    ids = list(
        UpgradeLog.objects.filter(plugin_name=plugin_name)
        .order_by()
        .values_list("merchant_id", flat=True)
        .distinct()
    )
    profiles: dict[UUID, tuple[str, str]] = {}
    registry = apps.get_model("merchants", "Merchant") if apps.is_installed("merchants") else None
    for start in range(0, len(ids) if registry else 0, 5000):
        chunk = ids[start : start + 5000]
        profiles.update(
            (m, (c, t))
            for m, c, t in registry.objects.filter(pk__in=chunk).values_list("pk", "country", "tier")
        )
    return [Candidate(m, *profiles.get(m, ("", ""))) for m in ids]


def simulate(
    *,
    plugin_name: str,
    version: str,
    percentage: Decimal,
    strategy: str = RolloutStrategy.RANDOM,
    target_countries: list[str] | None = None,
    target_tiers: list[str] | None = None,
    sample_size: int = SAMPLE_SIZE,
) -> dict:
    """How many known merchants the rollout would select, by country and tier, with a sample."""
    rollout = OpenRollout(
        id=0,
        plugin_name=plugin_name,
        version=version,
        percentage=Decimal(percentage),
        strategy=strategy,
        status=RolloutStatus.ACTIVE,
        target_countries=frozenset(target_countries or ()),
        target_tiers=frozenset(target_tiers or ()),
        release=None,
    )
    everyone = replace(rollout, percentage=Decimal(100))
    merchants = known_merchants(plugin_name)
    by_country: dict[str, Counter] = {}
    by_tier: dict[str, Counter] = {}
    chosen: list[tuple[int, str]] = []
    targeted = 0
    for merchant in merchants:
        country, tier = merchant.country or None, merchant.tier or None
        is_selected, _, bucket = in_cohort(rollout, merchant.merchant_id, country, tier)
        # Targeted: what the same rule selects at 100 % (excluded by the targets, not the percentage).
        is_targeted = is_selected or in_cohort(everyone, merchant.merchant_id, country, tier)[0]
        targeted += is_targeted
        for table, key in ((by_country, merchant.country or UNKNOWN), (by_tier, merchant.tier or UNKNOWN)):
            counts = table.setdefault(key, Counter())
            counts["known"] += 1
            counts["selected"] += is_selected
        if is_selected:
            chosen.append((bucket, str(merchant.merchant_id)))
    chosen.sort()
    return {
        "ok": True,
        "dry_run": True,
        "plugin_name": plugin_name,
        "version": version,
        "rollout_percentage": as_number(Decimal(percentage)),
        "rollout_strategy": strategy,
        "target_countries": sorted(target_countries or []),
        "target_tiers": sorted(target_tiers or []),
        "known_merchants": len(merchants),
        "targeted_merchants": targeted,
        "selected_merchants": len(chosen),
        "by_country": _rows(by_country, "country"),
        "by_tier": _rows(by_tier, "tier"),
        # The lowest buckets first: the merchants that stay selected at any higher percentage.
        "sample_merchant_ids": [merchant_id for _, merchant_id in chosen[:sample_size]],
    }


def _rows(table: dict[str, Counter], key: str) -> list[dict]:
    rows = [{key: name, "known": c["known"], "selected": c["selected"]} for name, c in table.items()]
    return sorted(rows, key=lambda r: (-r["selected"], -r["known"], r[key]))
