"""Upgrade notices: tell each registered merchant a rollout stage selected, once per version.

Run every minute by beat (``payments.tasks.notify_selected_merchants``) and right after a
stage opens; the dedup key (plugin and version) makes every run after the first a no-op for
a merchant already told.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from merchants import services as merchant_services
from merchants.choices import NoticeKind
from merchants.models import Merchant
from molam_upgrades.versions import Version
from rollouts import cohort
from rollouts.choices import RolloutStatus
from rollouts.models import Rollout

from .models import PaymentHealthReport


def upgrade_dedup_key(plugin_name: str, version: str) -> str:
    return f"upgrade:{plugin_name}:{version}"


def installed_versions(plugin_name: str, merchant_ids) -> dict:
    """Each merchant's latest reported version of the plugin (from its payment reports)."""
    rows = (
        PaymentHealthReport.objects.filter(plugin_name=plugin_name, merchant_id__in=merchant_ids)
        .order_by("merchant_id", "-hour")
        .values_list("merchant_id", "installed_version", "hour")
    )
    latest: dict = {}
    for merchant_id, version, _ in rows:
        latest.setdefault(merchant_id, version)
    return latest


def notify_rollout(rollout: Rollout) -> int:
    """Queue a notice for every registered merchant the rollout now selects and has not told."""
    if rollout.status != RolloutStatus.ACTIVE:
        return 0
    key = upgrade_dedup_key(rollout.plugin_name, rollout.version)
    open_rollout = cohort.OpenRollout.from_model(rollout, None)
    candidates = [
        m
        for m in Merchant.objects.exclude(notices__dedup_key=key).exclude(webhook_url="", contact_email="")
        if cohort.in_cohort(open_rollout, m.id, m.country, m.tier)[0]
    ]
    if not candidates:
        return 0
    versions = installed_versions(rollout.plugin_name, [m.id for m in candidates])
    target = Version(rollout.version)
    created = 0
    now = timezone.now()
    with transaction.atomic():
        for merchant in candidates:
            current = versions.get(merchant.id, "")
            try:
                if current and Version(current) >= target:
                    continue  # already there: nothing will change for this shop
            except ValueError:
                current = ""
            created += len(
                merchant_services.create_notices(
                    merchant,
                    kind=NoticeKind.UPGRADE_SCHEDULED,
                    dedup_key=key,
                    plugin_name=rollout.plugin_name,
                    from_version=current,
                    to_version=rollout.version,
                    effective_at=now,
                )
            )
    return created


def notify_selected_merchants() -> int:
    """Every active rollout's newly selected registered merchants get their notice."""
    return sum(notify_rollout(r) for r in Rollout.objects.filter(status=RolloutStatus.ACTIVE))
