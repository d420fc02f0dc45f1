"""Demo rollouts in every state, with their releases and merchants' upgrade reports.

Rollouts go through ``rollouts.services`` (audited, as in production) and the Sira pause through
the real auto-pause rule; reports are stored through ``rollbacks.services`` (their owner). Only
timestamps are set by hand, so the pages show weeks of history on a fresh database. Running it
twice writes nothing the second time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from molam_upgrades.demo import ACTOR, DEMO_MERCHANTS, REASONS, RELEASES, demo_random, previous_version
from rollbacks.choices import UpgradeStatus
from rollbacks.services import import_upgrade_reports

from . import services
from .models import Release, Rollout


@dataclass
class DemoRollout:
    """One demo rollout and the upgrade reports merchants sent for it."""

    plugin_name: str
    version: str
    percentage: int
    age: timedelta
    reports: int = 0
    failures: int = 0
    strategy: str = "random"
    countries: list[str] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)
    threshold: str = "0.03"
    then: str = "active"  # active | paused | completed | rolled_back | sira (left to auto-pause)
    pause_reason: str = ""


ROLLOUTS = [
    # Finished ones first: a plugin may have one open rollout, after its previous one closed.
    DemoRollout("woocommerce", "3.9.0", 100, timedelta(days=26), reports=380, failures=4, then="completed"),
    DemoRollout("shopify", "2.2.0", 100, timedelta(days=19), reports=210, failures=3, then="completed"),
    DemoRollout("prestashop", "1.7.9", 25, timedelta(days=12), reports=60, failures=9, then="rolled_back"),
    # Open rollouts, one per state the page shows.
    DemoRollout("woocommerce", "4.0.0", 25, timedelta(days=3), reports=240, failures=3),
    DemoRollout(
        "prestashop",
        "1.8.0",
        50,
        timedelta(days=2),
        reports=48,
        failures=6,
        strategy="geo",
        countries=["FR", "SN", "US"],
        then="sira",
    ),
    DemoRollout(
        "shopify",
        "2.3.0",
        10,
        timedelta(days=1, hours=4),
        reports=22,
        failures=0,
        strategy="merchant_tier",
        tiers=["enterprise", "pro"],
        then="paused",
        pause_reason="Checkout latency reported by two enterprise merchants; investigating before going further.",
    ),
    DemoRollout("magento", "2.4.7", 5, timedelta(hours=5), reports=4, failures=0, threshold="0.05"),
    DemoRollout("opencart", "3.1.0", 100, timedelta(days=5), reports=150, failures=1),
]


class RolloutDemo:
    """Writes the demo releases, rollouts and reports (``seed``)."""

    def __init__(self) -> None:
        self.rng = demo_random()
        self.now = timezone.now()

    def seed_releases(self) -> None:
        for plugin_name, version in RELEASES:
            if Release.objects.filter(plugin_name=plugin_name, version=version).exists():
                continue
            services.register_release(
                actor=ACTOR,
                plugin_name=plugin_name,
                version=version,
                download_url=f"https://releases.molam.example/{plugin_name}/molam-form-{version}.zip",
                sha256=uuid.uuid5(uuid.NAMESPACE_URL, f"{plugin_name}-{version}").hex * 2,
            )

    def seed_rollouts(self) -> None:
        created_any = False
        for demo in ROLLOUTS:
            if Rollout.objects.filter(plugin_name=demo.plugin_name, version=demo.version).exists():
                continue
            created_any = True
            with transaction.atomic():
                rollout = services.create_rollout(
                    actor=ACTOR,
                    plugin_name=demo.plugin_name,
                    version=demo.version,
                    rollout_percentage=Decimal(demo.percentage if demo.then != "completed" else 5),
                    rollout_strategy=demo.strategy,
                    target_countries=demo.countries,
                    target_tiers=demo.tiers,
                    error_threshold=Decimal(demo.threshold),
                    created_at=self.now - demo.age,
                )
                self.reports_for(rollout, demo)
                self.finish(rollout, demo)
        if created_any:
            # The real Sira rule pauses the failing prestashop rollout (and nothing else).
            services.auto_pause_failing_rollouts(source="command")

    def reports_for(self, rollout: Rollout, demo: DemoRollout) -> None:
        start = rollout.created_at
        span = (self.now if demo.then not in ("completed", "rolled_back") else start + demo.age * 0.6) - start
        failed_at = set(self.rng.sample(range(demo.reports), demo.failures))
        logs = []
        for i in range(demo.reports):
            status = UpgradeStatus.SUCCESS
            if i in failed_at:
                status = self.rng.choice([UpgradeStatus.FAILED, UpgradeStatus.ROLLED_BACK])
            logs.append(
                {
                    "merchant_id": DEMO_MERCHANTS[i % len(DEMO_MERCHANTS)],
                    "plugin_name": demo.plugin_name,
                    "from_version": previous_version(demo.plugin_name, demo.version),
                    "to_version": demo.version,
                    "status": status,
                    "error": self.rng.choice(REASONS) if status != UpgradeStatus.SUCCESS else None,
                    "duration_ms": self.rng.randint(4000, 25000),
                    "created_at": start + span * (i + 1) / (demo.reports + 1),
                }
            )
        import_upgrade_reports(logs)

    def finish(self, rollout: Rollout, demo: DemoRollout) -> None:
        if demo.then == "completed":
            for step in (25, 50, 100):
                services.change_rollout(rollout.pk, actor=ACTOR, percentage=Decimal(step))
            services.complete_rollout(rollout.pk, actor=ACTOR)
            # Backdate the milestones so the history and the velocity KPI look like real weeks.
            Rollout.objects.filter(pk=rollout.pk).update(
                full_rollout_at=rollout.created_at + demo.age * 0.2,
                completed_at=rollout.created_at + demo.age * 0.3,
            )
        elif demo.then == "rolled_back":
            services.pause_rollout(rollout.pk, actor=ACTOR, reason="Error rate above threshold")
            services.change_rollout(rollout.pk, actor=ACTOR, status="rolled_back")
            Rollout.objects.filter(pk=rollout.pk).update(completed_at=rollout.created_at + demo.age * 0.5)
        elif demo.then == "paused":
            services.pause_rollout(rollout.pk, actor=ACTOR, reason=demo.pause_reason)


def seed(stdout=None) -> None:
    """The rollouts app's demo data (registered with ``registry.register_demo_data``)."""
    demo = RolloutDemo()
    demo.seed_releases()
    demo.seed_rollouts()
