"""Aggregates maintained on write equal a recount of the raw rows: concurrently, and after psql edits."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.utils import timezone

from molam_upgrades.sira_rules import Report, count_merchants
from rollbacks import services
from rollbacks.aggregates import rollback_windows, verify_aggregates
from rollbacks.models import RollbackDaily, RollbackTotals, UpgradeLog
from rollbacks.reports import rollout_error_rate
from rollbacks.services import completed_rollbacks
from tests.factories import RollbackFactory, RolloutFactory

pytestmark = pytest.mark.usefixtures("uses_postgres")


def recount(rollout) -> tuple[int, int, int]:
    """The reference rule over the raw rows (molam_upgrades.sira_rules.count_merchants)."""
    counts = count_merchants(
        Report(log.merchant_id, log.status, log.created_at, bool(log.in_cohort), log.pk)
        for log in UpgradeLog.objects.filter(rollout_id=rollout.pk)
    )
    return counts.merchants, counts.errors, counts.upgraded


def health(rollout) -> tuple[int, int, int]:
    rate = rollout_error_rate(rollout.pk)
    return rate.merchants, rate.merchants_failed, rate.merchants_upgraded


@pytest.mark.django_db(transaction=True)
def test_aggregates_equal_a_recount_after_concurrent_ingestion():
    """Eight threads report at once on one rollout, often for the same merchants (first-report
    and latest-outcome races) and complete rollbacks of one plugin: no update is lost."""
    rollout = RolloutFactory(plugin_name="woocommerce", version="4.0.0", rollout_percentage=40)
    merchants = [uuid.uuid4() for _ in range(30)]
    rollbacks = [
        services.initiate_rollback(
            actor="test",
            merchant_id=uuid.uuid4(),
            plugin_name="woocommerce",
            from_version="4.0.0",
            to_version="3.9.0",
            trigger="automatic",
            reason="smoke test failed",
        )
        for _ in range(40)
    ]
    errors: list[Exception] = []
    barrier = threading.Barrier(8)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            barrier.wait()
            for i in range(40):
                services.record_upgrade(
                    merchant_id=rng.choice(merchants),
                    plugin_name="woocommerce",
                    from_version="3.9.0",
                    to_version="4.0.0",
                    status=rng.choice(["success", "success", "failed", "rolled_back"]),
                )
                if i % 8 == 0:
                    services.complete_rollback(
                        rollback=rollbacks[seed * 5 + i // 8],
                        success=rng.random() > 0.3,
                        duration_ms=rng.randint(100, 9000),
                        files_restored=10,
                        db_restored=True,
                    )
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    # 320 reports, and 40 completed rollbacks each recording the failed upgrade they undid.
    assert UpgradeLog.objects.filter(rollout_id=rollout.pk).count() == 360
    assert health(rollout) == recount(rollout)
    figures = rollout_error_rate(rollout.pk)
    assert figures.merchants > 0 and figures.reports_outside_cohort > 0  # a 40 % cohort: both kinds
    assert verify_aggregates() == []
    totals = RollbackTotals.objects.get(plugin_name="woocommerce", rollback_trigger="automatic")
    assert (totals.initiated, totals.completed, totals.succeeded + totals.failed) == (40, 40, 40)


@pytest.mark.django_db
def test_verify_finds_a_psql_edit_and_rebuild_repairs_it(capsys):
    rollout = RolloutFactory(plugin_name="woocommerce", version="4.0.0", rollout_percentage=100)
    logs = [
        services.record_upgrade(
            merchant_id=uuid.uuid4(), plugin_name="woocommerce", from_version="3.9.0", to_version="4.0.0",
            status="success",
        )
        for _ in range(12)
    ]  # fmt: skip
    RollbackFactory(plugin_name="woocommerce", success=False, duration_ms=4200)
    call_command("rebuild_aggregates", "--verify")
    assert "agree" in capsys.readouterr().out

    # Someone fixes statuses and adds a rollback by hand in psql: the aggregates do not know.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE plugin_upgrade_logs SET status = 'failed' WHERE id = ANY(%s)", [[logs[0].pk, logs[1].pk]]
        )
        cursor.execute(
            """INSERT INTO plugin_rollback_history (rollback_id, merchant_id, plugin_name, from_version, to_version,
                   rollback_trigger, success, duration_ms, sira_triggered, initiated_by, created_at, completed_at)
               VALUES (gen_random_uuid(), gen_random_uuid(), 'woocommerce', '4.0.0', '3.9.0', 'manual', TRUE, 900,
                       FALSE, 'psql', now(), now())"""
        )
    with pytest.raises(CommandError, match="differ from a recount"):
        call_command("rebuild_aggregates", "--verify")
    output = capsys.readouterr().out
    assert "rollout_report_counts" in output and "rollback_totals" in output

    call_command("rebuild_aggregates")
    call_command("rebuild_aggregates", "--verify")
    assert health(rollout) == recount(rollout) == (12, 2, 10)
    assert RollbackTotals.objects.get(plugin_name="woocommerce", rollback_trigger="manual").completed == 1
    # Live writes keep counting on top of the rebuilt rows.
    services.record_upgrade(
        merchant_id=logs[0].merchant_id, plugin_name="woocommerce", from_version="3.9.0", to_version="4.0.0",
        status="success",
    )  # fmt: skip
    assert health(rollout) == recount(rollout) == (12, 1, 11)
    assert verify_aggregates() == []


@pytest.mark.django_db
def test_rollback_aggregates_match_the_raw_history_by_plugin_trigger_and_day():
    now = timezone.now()
    for days, success, trigger in [
        (0, True, "automatic"),
        (0, False, "manual"),
        (3, True, "automatic"),
        (20, False, "automatic"),
    ]:
        RollbackFactory(
            plugin_name="prestashop",
            success=success,
            rollback_trigger=trigger,
            created_at=now - timedelta(days=days),
        )
    services.initiate_rollback(
        actor="ops", merchant_id=uuid.uuid4(), plugin_name="prestashop", from_version="2.0.0", to_version="1.9.0",
        trigger="operator_forced", reason="forced",
    )  # fmt: skip
    assert verify_aggregates() == []
    forced = RollbackTotals.objects.get(plugin_name="prestashop", rollback_trigger="operator_forced")
    assert (forced.initiated, forced.completed) == (1, 0)  # in progress
    assert RollbackDaily.objects.get(plugin_name="prestashop", day=now.date()).completed == 2
    stats = services.rollback_stats(now=now)
    assert stats["success_rate_by_plugin"] == [
        {
            "plugin_name": "prestashop",
            "total_rollbacks": 4,
            "successful_rollbacks": 2,
            "success_rate_pct": 50.0,
            "avg_duration_ms": 1500,
        }
    ]
    assert (stats["rollbacks_last_24h"], stats["failed_rollbacks_last_7d"], stats["rollbacks_last_7d"]) == (
        2,
        1,
        3,
    )


@pytest.mark.django_db
def test_sliding_windows_from_daily_figures_and_edges_equal_the_raw_count():
    now = timezone.now()
    # Around every edge: 24 hours, the week's partial first day, the week's start, beyond it.
    for hours in (1, 23, 25, 47, 100, 6 * 24 + 23, 7 * 24 - 1, 7 * 24 + 1, 9 * 24):
        for plugin, success in (("a", True), ("a", False), ("b", False)):
            RollbackFactory(plugin_name=plugin, success=success, created_at=now - timedelta(hours=hours))
    windows = rollback_windows(now)
    for plugin in ("a", "b"):
        raw = completed_rollbacks().filter(plugin_name=plugin)
        week = raw.filter(created_at__gte=now - timedelta(days=7))
        assert windows[plugin] == {
            "total_7d": week.count(),
            "failed_7d": week.filter(success=False).count(),
            "last_24h": raw.filter(created_at__gte=now - timedelta(hours=24)).count(),
        }
    assert windows["a"]["total_7d"] == 14 and windows["b"]["last_24h"] == 2


@pytest.mark.django_db
def test_a_late_older_report_counts_as_a_report_but_not_as_the_latest_outcome():
    """The outcome row keeps the newest report by (created_at, id); an older one arriving late
    adds to the report count only, and the counts still equal the recount."""
    now = timezone.now()
    rollout = RolloutFactory(
        plugin_name="woocommerce",
        version="4.0.0",
        rollout_percentage=100,
        created_at=now - timedelta(hours=1),
    )
    merchant = uuid.uuid4()

    def report(status: str, minutes_ago: int) -> None:
        services.store_report(
            UpgradeLog(
                merchant_id=merchant,
                plugin_name="woocommerce",
                from_version="3.9.0",
                to_version="4.0.0",
                status=status,
                created_at=now - timedelta(minutes=minutes_ago),
            )
        )

    report("failed", 5)
    assert health(rollout) == (1, 1, 0)
    report("success", 1)  # newer: the merchant's outcome is now a success
    assert health(rollout) == (1, 0, 1)
    report("failed", 10)  # older, arriving late: counted as a report, the outcome stays
    assert health(rollout) == (1, 0, 1) == recount(rollout)
    rate = rollout_error_rate(rollout.pk)
    assert (rate.reports, rate.reports_failed) == (3, 2)
    report("rolled_back", 0)  # newest: success → rolled back
    assert health(rollout) == (1, 1, 0) == recount(rollout)
    assert verify_aggregates() == []
