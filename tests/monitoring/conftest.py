"""Monitoring fixtures: a fleet with every kind of row the metrics read, a PagerDuty stand-in."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from molam_upgrades.models import Alert
from rollouts.models import AutoCheckRun
from tests.factories import PendingRollbackFactory, RollbackFactory, RolloutFactory, UpgradeLogFactory

from .support import Receiver

FLEET_MERCHANT_ID = uuid.UUID(int=0)


@dataclass
class Fleet:
    """What ``fleet`` created, for assertions."""

    woo_rollout: object
    presta_rollout: object


@pytest.fixture
def fleet(db) -> Fleet:
    """Rollbacks (ok, failed, old, in progress, a Sira record), two open rollouts, Sira runs, alerts."""
    now = timezone.now()
    # woocommerce: 3 automatic (1 failed) this week, 1 manual 10 days ago, 1 in progress.
    RollbackFactory(plugin_name="woocommerce", created_at=now - timedelta(hours=2), duration_ms=800)
    RollbackFactory(plugin_name="woocommerce", created_at=now - timedelta(hours=30), duration_ms=2500)
    RollbackFactory(
        plugin_name="woocommerce",
        created_at=now - timedelta(days=3),
        success=False,
        duration_ms=45_000,
        error_message="Database restore failed",
    )
    RollbackFactory(
        plugin_name="woocommerce",
        rollback_trigger="manual",
        created_at=now - timedelta(days=10),
        duration_ms=1200,
    )
    PendingRollbackFactory(plugin_name="woocommerce", created_at=now - timedelta(minutes=5))
    # prestashop: one operator-forced rollback without a reported duration.
    RollbackFactory(
        plugin_name="prestashop",
        rollback_trigger="operator_forced",
        created_at=now - timedelta(hours=1),
        duration_ms=None,
    )
    # A Sira pause record: a fleet event, never counted as a rollback.
    RollbackFactory(
        plugin_name="woocommerce",
        merchant_id=FLEET_MERCHANT_ID,
        sira_triggered=True,
        created_at=now - timedelta(hours=1),
        duration_ms=0,
    )

    woo = RolloutFactory(
        plugin_name="woocommerce",
        version="4.1.0",
        rollout_percentage=Decimal("10"),
        error_threshold=Decimal("0.05"),
        created_at=now - timedelta(days=2),
    )
    for i in range(10):
        UpgradeLogFactory(
            plugin_name="woocommerce", to_version="4.1.0", status="failed" if i < 2 else "success"
        )
    presta = RolloutFactory(
        plugin_name="prestashop",
        version="2.0.0",
        rollout_percentage=Decimal("25.5"),
        status="paused",
        auto_paused=True,
        created_at=now - timedelta(hours=3),
    )
    RolloutFactory(plugin_name="shopify", status="completed", rollout_percentage=100)

    AutoCheckRun.objects.create(
        source="beat",
        started_at=now - timedelta(minutes=4),
        finished_at=now - timedelta(minutes=4),
        paused_count=1,
    )
    AutoCheckRun.objects.create(
        source="beat", started_at=now - timedelta(minutes=9), finished_at=now - timedelta(minutes=9)
    )
    AutoCheckRun.objects.create(
        source="http", started_at=now - timedelta(hours=1), finished_at=now - timedelta(hours=1)
    )
    AutoCheckRun.objects.create(source="beat", started_at=now)  # still running: not counted

    Alert.objects.create(kind="rollback_failed", summary="s", dedup_key="a", status="sent", attempts=1)
    Alert.objects.create(kind="rollback_failed", summary="s", dedup_key="b", status="failed", attempts=6)
    Alert.objects.create(kind="rollout_auto_paused", summary="s", dedup_key="c", status="pending")
    return Fleet(woo_rollout=woo, presta_rollout=presta)


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (Debian package: prometheus; make test installs it)")
    return path


@pytest.fixture
def pagerduty(settings):
    """Start a receiver and point PAGERDUTY_EVENTS_URL at it: ``pagerduty(statuses, delay)``."""
    receivers = []
    settings.PAGERDUTY_ROUTING_KEY = "R0UTINGKEY"

    def start(statuses=(), delay: float = 0.0) -> Receiver:
        receiver = Receiver(statuses, delay)
        receivers.append(receiver)
        settings.PAGERDUTY_EVENTS_URL = receiver.url
        return receiver

    yield start
    for receiver in receivers:
        receiver.close()
