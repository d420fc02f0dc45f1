"""Demo rollback history: four weeks of merchant rollbacks, one forced rollback waiting for its
agent, and alerts for the latest failures. Running it twice writes nothing the second time."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from molam_upgrades.demo import ACTOR, DEMO_MERCHANTS, ERRORS, REASONS, SEED_MARK, demo_random, versions_for
from molam_upgrades.models import Alert

from .choices import RollbackTrigger
from .models import RollbackHistory
from .services import alert_rollback_failed, import_rollback_history, initiate_rollback


class RollbackDemo:
    def __init__(self) -> None:
        self.rng = demo_random()
        self.now = timezone.now()

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
        import_rollback_history(rows)
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

    def seed_alerts(self) -> None:
        """Alerts for the two latest failed demo rollbacks (the Sira pause raised its own)."""
        failures = RollbackHistory.objects.filter(initiated_by=SEED_MARK, success=False).order_by(
            "-created_at"
        )[:2]
        for failed in failures:
            dedup_key = f"rollback-failed-{failed.rollback_id}"
            if Alert.objects.filter(dedup_key=dedup_key).exists():
                continue
            alert_rollback_failed(failed)


def seed(stdout=None) -> None:
    """The rollbacks app's demo data (registered with ``registry.register_demo_data``)."""
    demo = RollbackDemo()
    demo.seed_rollback_history()
    demo.seed_alerts()
