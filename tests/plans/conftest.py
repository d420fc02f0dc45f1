"""Plans under test: rollouts started the API's way, reports from merchants, a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from rollbacks.choices import UpgradeStatus
from rollouts import services as rollout_services
from tests.factories import UpgradeLogFactory

# Monday 2026-11-30 10:00 UTC (10:00 in Africa/Dakar too: UTC+0, no daylight saving).
MONDAY_10H = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)

# Two stages an hour each: sample 3 merchants, error rate at most the rollout's threshold.
HOURLY = [
    {"percentage": 5, "min_soak_minutes": 60, "min_merchants": 3},
    {"percentage": 25, "min_soak_minutes": 60, "min_merchants": 6},
    {"percentage": 100, "min_soak_minutes": 60, "min_merchants": 6},
]


@pytest.fixture
def clock():
    """A clock that starts on Monday 10:00 UTC and moves only when told (``clock.shift``)."""
    with time_machine.travel(MONDAY_10H, tick=False) as traveller:
        yield traveller


def start_rollout(plugin_name: str = "woocommerce", version: str = "4.0.0", percentage="5", **fields):
    return rollout_services.create_rollout(
        actor="user:setup",
        plugin_name=plugin_name,
        version=version,
        rollout_percentage=Decimal(str(percentage)),
        **fields,
    )


def report(rollout, ok: int = 0, failed: int = 0, when: datetime | None = None) -> None:
    """Upgrade reports from distinct merchants for the rollout's version."""
    created = when or (rollout.created_at + timedelta(seconds=1))
    for status, n in ((UpgradeStatus.SUCCESS, ok), (UpgradeStatus.FAILED, failed)):
        UpgradeLogFactory.create_batch(
            n, plugin_name=rollout.plugin_name, to_version=rollout.version, status=status, created_at=created
        )


def percentage_of(rollout) -> Decimal:
    rollout.refresh_from_db()
    return rollout.rollout_percentage
