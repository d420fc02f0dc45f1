"""PostgreSQL's single-statement report write (``aggregates.store_batch``), for one report or a
group, writes exactly the rows of the portable path (``services.store_report_in_steps``, the
embedded SQLite default's)."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from molam_upgrades import idempotency
from molam_upgrades.models import IdempotencyRecord
from rollbacks import aggregates, report_writer, services
from rollbacks.aggregates import COUNTERS, verify_aggregates
from rollbacks.models import RolloutMerchantOutcome, RolloutReportCounts, UpgradeLog
from tests.factories import RolloutFactory

pytestmark = [pytest.mark.usefixtures("uses_postgres"), pytest.mark.django_db]

STATUSES = ("success", "failed", "rolled_back")


def scenario(seed: int) -> list[dict]:
    """Reports of 25 merchants on woocommerce: three versions (one without a rollout, one
    reported before its rollout started), shuffled timestamps (late older reports), ties."""
    rng = random.Random(seed)
    now = timezone.now()
    merchants = [uuid.uuid4() for _ in range(25)]
    reports = []
    for n in range(300):
        reports.append(
            {
                "id": uuid.uuid4(),
                "merchant_id": rng.choice(merchants),
                "plugin_name": "woocommerce",
                "from_version": "3.9.0",
                "to_version": rng.choice(("4.0.0", "4.0.0", "4.0.0", "4.1.0")),
                "status": rng.choice(STATUSES),
                "duration_ms": rng.randint(1, 9000),
                # Some a few minutes before the rollout started (they count nowhere); ties on purpose.
                "created_at": now - timedelta(seconds=rng.choice((0, 30, 60)) + rng.randint(0, 5) * 60),
                "key": f"key-{n % 280}",  # 20 keys used twice: the second write is refused
            }
        )
    return reports


def items(reports: list[dict]) -> list[tuple[UpgradeLog, dict]]:
    return [
        (
            UpgradeLog(**{k: v for k, v in report.items() if k != "key"}),
            idempotency.key_record("plugin:test", report["key"], "fp", 201, {"id": str(report["id"])}),
        )
        for report in reports
    ]


def one_by_one(store):
    def write(reports: list[dict]) -> list:
        return [log.pk for log, record in items(reports) if store(log, record) is None]

    return write


def in_groups(reports: list[dict]) -> list:
    """Groups of up to 16 as the report writer makes them (no merchant or key twice in one)."""
    refused = []
    pending = [(log, record, None) for log, record in items(reports)]
    for start in range(0, len(pending), 16):
        for statement in report_writer.split(pending[start : start + 16]):
            stored = aggregates.store_batch([(log, record) for log, record, _ in statement])
            refused += [log.pk for (log, _, _), ok in zip(statement, stored, strict=True) if not ok]
    return refused


def write_all(reports: list[dict], write) -> dict:
    """Store every report through ``write`` and return every row the writes produced."""
    refused = sorted(write(reports))
    return {
        "refused": refused,
        "reports": sorted(UpgradeLog.objects.values_list("id", "rollout_id", "in_cohort")),
        "outcomes": sorted(
            RolloutMerchantOutcome.objects.values_list(
                "rollout_id",
                "merchant_id",
                "status",
                "previous_status",
                "report_id",
                "reported_at",
                "reports",
            )
        ),
        "counts": sorted(RolloutReportCounts.objects.values_list("rollout_id", "stripe", *COUNTERS)),
        "keys": sorted(IdempotencyRecord.objects.values_list("key", "response_body")),
        "verify": verify_aggregates(),
    }


class _Undo(Exception):
    pass


def rows_after(reports: list[dict], write) -> dict:
    """``write_all`` in a transaction that is then rolled back (the next run starts equal)."""
    result = {}
    try:
        with transaction.atomic():
            result = write_all(reports, write)
            raise _Undo
    except _Undo:
        pass
    return result


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_statement_alone_or_grouped_writes_the_rows_of_the_portable_path(seed):
    RolloutFactory(
        plugin_name="woocommerce",
        version="4.0.0",
        rollout_percentage=50,
        created_at=timezone.now() - timedelta(minutes=3),
    )
    reports = scenario(seed)
    one_statement = rows_after(reports, one_by_one(services.store_report))
    in_steps = rows_after(reports, one_by_one(services.store_report_in_steps))
    grouped = rows_after(reports, in_groups)

    assert connection.vendor == "postgresql"
    assert one_statement == in_steps
    assert grouped == in_steps
    assert one_statement["verify"] == []
    assert len(one_statement["refused"]) == 20
    stamped = [r for r in one_statement["reports"] if r[1] is not None]
    # The scenario reaches every case: in and outside the cohort, and counted nowhere.
    assert {r[2] for r in stamped} == {True, False}
    assert len(stamped) < len(one_statement["reports"])
    assert any(o[3] is not None for o in one_statement["outcomes"])  # merchants reporting again


def test_a_refused_key_writes_nothing():
    rollout = RolloutFactory(
        plugin_name="woocommerce",
        version="4.0.0",
        rollout_percentage=100,
        created_at=timezone.now() - timedelta(hours=1),
    )
    report = services.new_upgrade_report(
        merchant_id=uuid.uuid4(),
        plugin_name="woocommerce",
        from_version="3.9.0",
        to_version="4.0.0",
        status="failed",
    )
    record = idempotency.key_record("plugin:test", "k1", "fp", 201, {"ok": True})
    assert services.store_report(report, record) is report
    assert (report.rollout_id, report.in_cohort) == (rollout.pk, True)

    again = services.new_upgrade_report(
        merchant_id=report.merchant_id,
        plugin_name="woocommerce",
        from_version="3.9.0",
        to_version="4.0.0",
        status="success",
    )
    assert services.store_report(again, record) is None
    assert UpgradeLog.objects.count() == 1
    counts = RolloutReportCounts.objects.get(rollout_id=rollout.pk)
    assert (counts.reports, counts.merchants, counts.merchants_failed, counts.merchants_upgraded) == (
        1,
        1,
        1,
        0,
    )
