"""``seed_demo``: realistic demo data for the ops dashboards, and three demo users.

Running it twice changes nothing the second time: users are updated in place, and each kind
of demo data is only written when it is missing. Rollouts go through ``rollouts.services``
(audited, as in production) and the Sira pause through the real auto-pause rule. Only
timestamps are set by hand, so the pages show weeks of history on a fresh database.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from molam_upgrades.alerts import raise_alert
from molam_upgrades.choices import AlertSeverity, Role
from molam_upgrades.models import Alert
from rollbacks.choices import RollbackTrigger, UpgradeStatus
from rollbacks.models import RollbackHistory, UpgradeLog
from rollbacks.services import initiate_rollback
from rollouts import services as rollouts
from rollouts.models import Release, Rollout

DEMO_PASSWORD = "molam-demo"
DEMO_USERS = [
    # username, role, is_staff (admin site access), description
    ("admin", Role.PAY_ADMIN, True, "payments admin: everything, plus the Django admin"),
    ("ops", Role.OPS_PLUGINS, False, "plugin operations: runs rollouts"),
    ("viewer", Role.OPS_VIEWER, False, "operations viewer: read-only dashboards"),
]
ACTOR = "user:ops"
SEED_MARK = "seed_demo"  # initiated_by of the demo rollback history


def merchant(n: int) -> uuid.UUID:
    """Stable demo merchant ids, so a second run recognises its own data."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://demo.molam.example/merchants/{n}")


DEMO_MERCHANTS = [merchant(n) for n in range(400)]

RELEASES = [
    ("woocommerce", "3.9.0"),
    ("woocommerce", "4.0.0"),
    ("prestashop", "1.7.9"),
    ("prestashop", "1.8.0"),
    ("shopify", "2.2.0"),
    ("shopify", "2.3.0"),
    ("magento", "2.4.7"),
    ("opencart", "3.1.0"),
    ("wix", "1.2.0"),
]


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

ERRORS = [
    "Database restore failed: table wp_molam_orders is locked",
    "Backup archive checksum mismatch",
    "Smoke test timed out after 10 s",
    "Permission denied writing to plugin directory",
]
REASONS = [
    "Upgrade verification failed",
    "Migration 004_add_currency.sql failed",
    "Smoke test returned HTTP 500",
    "Payment webhook signature check failed after upgrade",
]


class Command(BaseCommand):
    help = "Load demo data (plugins, rollouts in every state, rollback history) and demo users."

    def handle(self, *args, **options) -> None:
        self.rng = random.Random(115)
        self.now = timezone.now()
        self.seed_users()
        self.seed_releases()
        self.seed_rollouts()
        self.seed_rollback_history()
        self.seed_alerts()
        self.stdout.write(self.style.SUCCESS("Demo data ready. Sign in at /login/ with:"))
        for username, role, _, description in DEMO_USERS:
            self.stdout.write(f"  {username:<7} / {DEMO_PASSWORD}   ({role}: {description})")

    # -- users ------------------------------------------------------------------------------
    def seed_users(self) -> None:
        for username, role, is_staff, _ in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@demo.molam.example"}
            )
            user.is_staff = is_staff
            user.is_superuser = role == Role.PAY_ADMIN
            user.set_password(DEMO_PASSWORD)
            user.save()
            group, _ = Group.objects.get_or_create(name=role)
            user.groups.add(group)

    # -- releases ---------------------------------------------------------------------------
    def seed_releases(self) -> None:
        for plugin_name, version in RELEASES:
            if Release.objects.filter(plugin_name=plugin_name, version=version).exists():
                continue
            rollouts.register_release(
                actor=ACTOR,
                plugin_name=plugin_name,
                version=version,
                download_url=f"https://releases.molam.example/{plugin_name}/molam-form-{version}.zip",
                sha256=uuid.uuid5(uuid.NAMESPACE_URL, f"{plugin_name}-{version}").hex * 2,
            )

    # -- rollouts and upgrade reports -------------------------------------------------------
    def seed_rollouts(self) -> None:
        created_any = False
        for demo in ROLLOUTS:
            if Rollout.objects.filter(plugin_name=demo.plugin_name, version=demo.version).exists():
                continue
            created_any = True
            with transaction.atomic():
                rollout = rollouts.create_rollout(
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
            rollouts.auto_pause_failing_rollouts(source="command")

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
                UpgradeLog(
                    merchant_id=DEMO_MERCHANTS[i % len(DEMO_MERCHANTS)],
                    plugin_name=demo.plugin_name,
                    from_version=previous_version(demo.plugin_name, demo.version),
                    to_version=demo.version,
                    status=status,
                    error=self.rng.choice(REASONS) if status != UpgradeStatus.SUCCESS else None,
                    duration_ms=self.rng.randint(4000, 25000),
                    created_at=start + span * (i + 1) / (demo.reports + 1),
                )
            )
        UpgradeLog.objects.bulk_create(logs)

    def finish(self, rollout: Rollout, demo: DemoRollout) -> None:
        if demo.then == "completed":
            for step in (25, 50, 100):
                rollouts.change_rollout(rollout.pk, actor=ACTOR, percentage=Decimal(step))
            rollouts.complete_rollout(rollout.pk, actor=ACTOR)
            # Backdate the milestones so the history and the velocity KPI look like real weeks.
            Rollout.objects.filter(pk=rollout.pk).update(
                full_rollout_at=rollout.created_at + demo.age * 0.2,
                completed_at=rollout.created_at + demo.age * 0.3,
            )
        elif demo.then == "rolled_back":
            rollouts.pause_rollout(rollout.pk, actor=ACTOR, reason="Error rate above threshold")
            rollouts.change_rollout(rollout.pk, actor=ACTOR, status="rolled_back")
            Rollout.objects.filter(pk=rollout.pk).update(completed_at=rollout.created_at + demo.age * 0.5)
        elif demo.then == "paused":
            rollouts.pause_rollout(rollout.pk, actor=ACTOR, reason=demo.pause_reason)

    # -- rollback history -------------------------------------------------------------------
    def seed_rollback_history(self) -> None:
        if RollbackHistory.objects.filter(initiated_by=SEED_MARK).exists():
            return
        plugins = [
            "woocommerce",
            "woocommerce",
            "woocommerce",
            "prestashop",
            "prestashop",
            "shopify",
            "magento",
        ]
        rows = []
        for day in range(28):
            for _ in range(self.rng.randint(2, 8)):
                plugin_name = self.rng.choice(plugins)
                to_version, from_version = versions_for(plugin_name)
                created = self.now - timedelta(days=day, minutes=self.rng.randint(5, 1430))
                # Few failures recently (the 7-day target is met), a rough patch two weeks ago.
                failed = self.rng.random() < (0.015 if day < 7 else 0.06 if day < 18 else 0.03)
                trigger = self.rng.choices(
                    [RollbackTrigger.AUTOMATIC, RollbackTrigger.MANUAL, RollbackTrigger.OPERATOR_FORCED],
                    weights=[80, 12, 8],
                )[0]
                duration = self.rng.randint(3500, 9000) if failed else int(self.rng.gauss(1600, 500))
                rows.append(
                    RollbackHistory(
                        merchant_id=self.rng.choice(DEMO_MERCHANTS),
                        plugin_name=plugin_name,
                        from_version=from_version,
                        to_version=to_version,
                        rollback_trigger=trigger,
                        success=not failed,
                        duration_ms=max(350, duration),
                        files_restored=self.rng.randint(90, 140) if not failed else self.rng.randint(0, 60),
                        db_restored=not failed,
                        rollback_reason="Performance degradation reported"
                        if trigger == RollbackTrigger.OPERATOR_FORCED
                        else self.rng.choice(REASONS),
                        error_message=self.rng.choice(ERRORS) if failed else None,
                        initiated_by=SEED_MARK,
                        created_at=created,
                        completed_at=created + timedelta(milliseconds=max(350, duration)),
                    )
                )
        RollbackHistory.objects.bulk_create(rows)
        # One operator-forced rollback waiting for the merchant's agent (seed case 3).
        initiate_rollback(
            actor=ACTOR,
            merchant_id=DEMO_MERCHANTS[7],
            plugin_name="woocommerce",
            from_version="4.0.0",
            to_version="3.9.0",
            trigger=RollbackTrigger.OPERATOR_FORCED,
            reason="Performance degradation reported",
        )

    # -- alerts -----------------------------------------------------------------------------
    def seed_alerts(self) -> None:
        """Alerts for the two latest failed demo rollbacks (the Sira pause raised its own)."""
        failures = RollbackHistory.objects.filter(initiated_by=SEED_MARK, success=False).order_by(
            "-created_at"
        )[:2]
        for failed in failures:
            dedup_key = f"rollback-failed-{failed.rollback_id}"
            if Alert.objects.filter(dedup_key=dedup_key).exists():
                continue
            raise_alert(
                kind="rollback_failed",
                summary=f"Plugin rollback failed: {failed.plugin_name} {failed.from_version} → "
                f"{failed.to_version} for merchant {failed.merchant_id}",
                dedup_key=dedup_key,
                severity=AlertSeverity.CRITICAL,
                details={"rollback_id": str(failed.rollback_id), "error_message": failed.error_message},
            )


def previous_version(plugin_name: str, version: str) -> str:
    known = [v for p, v in RELEASES if p == plugin_name]
    index = known.index(version) if version in known else 0
    return known[index - 1] if index > 0 else "1.0.0"


def versions_for(plugin_name: str) -> tuple[str, str]:
    """(version rolled back to, version rolled back from) for a demo rollback."""
    known = [v for p, v in RELEASES if p == plugin_name]
    if len(known) >= 2:
        return known[-2], known[-1]
    return "2.4.6", known[0]
