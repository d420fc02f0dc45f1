"""The PostgreSQL functions agree with the Python services."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from molam_upgrades.models import Alert, AuditEntry
from molam_upgrades.sira_rules import wilson_lower_bound
from rollbacks.models import RollbackHistory, UpgradeLog
from rollouts.cohort import OpenRollout, bucket_for, in_cohort
from rollouts.metrics import rollout_error_rate
from rollouts.models import AutoCheckRun, Rollout
from rollouts.services import auto_pause_failing_rollouts
from tests.factories import RolloutFactory, UpgradeLogFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uses_postgres")]

COUNTRIES = ["US", "FR", "SN", "CN", "DE", "us", None]
TIERS = ["enterprise", "pro", "starter", "PRO", None]


def _sql(query, params):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def test_sql_and_python_bucketing_agree_on_ten_thousand_random_inputs():
    rng = random.Random(20261126)
    plugins = [
        ("woocommerce", "4.0.0", "random", [], []),
        ("prestashop", "1.8.0-rc.1", "geo", ["FR", "SN", "US"], []),
        ("shopify", "2.5.0", "merchant_tier", [], ["enterprise", "pro"]),
    ]
    rollouts = {}
    for name, version, strategy, countries, tiers in plugins:
        pct = Decimal(rng.randint(0, 10000)) / 100
        rollouts[name] = RolloutFactory(
            plugin_name=name,
            version=version,
            rollout_strategy=strategy,
            target_countries=countries,
            target_tiers=tiers,
            rollout_percentage=pct,
        )
    inputs = []
    for _ in range(10_000):
        merchant = uuid.UUID(int=rng.getrandbits(128), version=4)
        plugin = rng.choice(list(rollouts))
        inputs.append((merchant, plugin, rng.choice(COUNTRIES), rng.choice(TIERS)))

    rows = _sql(
        """
        SELECT t.ord, should_merchant_upgrade(t.merchant, t.plugin, t.country, t.tier),
               molam_rollout_bucket(r.plugin_name, r.version, t.merchant)
        FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[]) WITH ORDINALITY
             AS t(merchant, plugin, country, tier, ord)
        JOIN plugin_rollouts r ON r.plugin_name = t.plugin
        ORDER BY t.ord
        """,
        [[i[0] for i in inputs], [i[1] for i in inputs], [i[2] for i in inputs], [i[3] for i in inputs]],
    )
    assert len(rows) == 10_000
    snapshots = {name: OpenRollout.from_model(r, None) for name, r in rollouts.items()}
    disagreements = []
    selected_count = 0
    for (merchant, plugin, country, tier), (_, sql_selected, sql_bucket) in zip(inputs, rows, strict=True):
        snap = snapshots[plugin]
        py_selected, _, py_bucket = in_cohort(
            snap, merchant, country.upper() if country else None, tier.lower() if tier else None
        )
        selected_count += py_selected
        if (py_selected, py_bucket) != (sql_selected, sql_bucket):
            disagreements.append((merchant, plugin, country, tier, py_selected, sql_selected))
    assert disagreements == []
    assert 0 < selected_count < 10_000  # the sample exercises both outcomes


def test_sql_bucket_matches_python_for_edge_strings():
    merchant = uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff")
    ((value,),) = _sql(
        "SELECT molam_rollout_bucket(%s, %s, %s::uuid)", ["a_b-c", "1.0.0+build.5", str(merchant)]
    )
    assert value == bucket_for("a_b-c", "1.0.0+build.5", merchant)


def test_paused_rollouts_select_nobody_in_sql():
    RolloutFactory(plugin_name="woocommerce", rollout_percentage=100, status="paused")
    assert _sql(
        "SELECT should_merchant_upgrade(%s::uuid, 'woocommerce', NULL, NULL)", [str(uuid.uuid4())]
    ) == [(False,)]


def test_sql_error_rate_matches_python():
    rollout = RolloutFactory(plugin_name="woocommerce", version="4.0.0")
    for status in ["success"] * 6 + ["failed"] * 2 + ["rolled_back"]:
        UpgradeLogFactory(plugin_name="woocommerce", to_version="4.0.0", status=status)
    python_rate = rollout_error_rate(rollout.pk).error_rate
    ((sql_rate,),) = _sql("SELECT get_rollout_error_rate(%s)", [rollout.pk])
    assert sql_rate == python_rate == Decimal("0.3333")
    empty = RolloutFactory(plugin_name="empty")
    assert _sql("SELECT get_rollout_error_rate(%s)", [empty.pk]) == [(Decimal("0"),)]


def test_sql_and_python_agree_on_merchant_counts_with_repeats_outsiders_and_late_reports():
    """Merchants counted once by their latest outcome, outsiders stored but not counted."""
    rng = random.Random(20261129)
    base = timezone.now()
    rollout = RolloutFactory(
        plugin_name="woocommerce",
        version="4.0.0",
        rollout_percentage=30,
        created_at=base - timedelta(hours=2),
    )
    merchants = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(80)]
    for _ in range(600):
        merchant = rng.choice(merchants)
        # Some reports arrive late: an older outcome must not replace a newer one.
        UpgradeLogFactory(
            merchant_id=merchant,
            plugin_name="woocommerce",
            to_version="4.0.0",
            status=rng.choice(["success", "success", "failed", "rolled_back"]),
            created_at=base - timedelta(seconds=rng.randint(0, 3600)),
        )
    UpgradeLogFactory(plugin_name="woocommerce", to_version="3.0.0", status="failed")  # counts nowhere
    health = rollout_error_rate(rollout.pk)
    ((merchants_sql, failed_sql, upgraded_sql, reports_sql, _, outside_sql, rate_sql, bound_sql),) = _sql(
        "SELECT * FROM get_rollout_merchant_counts(%s)", [rollout.pk]
    )
    cohort = [m for m in merchants if bucket_for("woocommerce", "4.0.0", m) < 3000]
    latest = {}
    for log in UpgradeLog.objects.filter(plugin_name="woocommerce", to_version="4.0.0").order_by(
        "created_at", "id"
    ):
        latest[log.merchant_id] = log.status
    expected_failed = sum(1 for m in cohort if latest.get(m) in ("failed", "rolled_back"))
    assert 0 < len(cohort) < len(merchants)
    assert (health.merchants, health.merchants_failed) == (
        len([m for m in cohort if m in latest]),
        expected_failed,
    )
    assert (merchants_sql, failed_sql, upgraded_sql, reports_sql, outside_sql) == (
        health.merchants,
        health.merchants_failed,
        health.merchants_upgraded,
        health.reports,
        health.reports_outside_cohort,
    )
    assert health.reports + health.reports_outside_cohort == 600
    assert rate_sql == health.error_rate
    assert bound_sql == pytest.approx(health.lower_bound, abs=1e-12)


@pytest.mark.parametrize(("merchants", "failed"), [(12, 1), (50, 6), (0, 0), (40, 0), (7, 7), (1000, 31)])
def test_sql_and_python_wilson_lower_bounds_agree(merchants, failed):
    ((sql,),) = _sql("SELECT molam_wilson_lower_bound(%s, %s)", [failed, merchants])
    assert sql == pytest.approx(wilson_lower_bound(failed, merchants), abs=1e-12)


def _fleet():
    """Rollouts that must be paused, must not, and borderline ones."""
    specs = [
        ("fails-a", 50, 5, Decimal("0.03"), 10, True),  # 10 % > 3 %
        ("fails-b", 100, 4, Decimal("0.03"), 10, True),  # 4 % > 3 %
        ("exact", 100, 3, Decimal("0.03"), 10, False),  # 3 % is not above 3 %
        ("healthy", 200, 1, Decimal("0.03"), 10, False),
        ("tiny", 5, 5, Decimal("0.03"), 10, False),  # below min sample size
        ("custom", 20, 3, Decimal("0.10"), 20, True),  # 15 % > 10 %, sample 20
        ("wilson-12", 12, 1, Decimal("0.03"), 10, False, True),  # 8.3 %, lower bound 1.5 %
        ("wilson-50", 50, 6, Decimal("0.03"), 10, True, True),  # 12 %, lower bound 5.6 %
    ]
    for name, total, failed, threshold, min_sample, _, *gate in specs:
        RolloutFactory(
            plugin_name=name,
            version="1.0.0",
            error_threshold=threshold,
            min_sample_size=min_sample,
            wilson_gate=bool(gate),
        )
        for i in range(total):
            UpgradeLogFactory(
                plugin_name=name, to_version="1.0.0", status="failed" if i < failed else "success"
            )
    return {spec[0] for spec in specs if spec[5]}


def _outcome() -> dict:
    """Everything an auto-pause writes, keyed by plugin name (ids differ between runs)."""
    names = dict(Rollout.objects.values_list("pk", "plugin_name"))
    return {
        "paused": sorted(
            Rollout.objects.filter(status="paused", auto_paused=True).values_list(
                "plugin_name", "paused_reason", "paused_by"
            )
        ),
        "history": sorted(
            (names[r], plugin, str(rate), reason, trigger, success)
            for r, plugin, rate, reason, trigger, success in RollbackHistory.objects.filter(
                sira_triggered=True
            ).values_list(
                "rollout_id",
                "plugin_name",
                "error_rate_detected",
                "rollback_reason",
                "rollback_trigger",
                "success",
            )
        ),
        "audit": sorted(
            (names[int(oid)], actor, before, after)
            for oid, actor, before, after in AuditEntry.objects.filter(
                action="rollout.auto_paused"
            ).values_list("object_id", "actor", "before", "after")
        ),
        "alerts": sorted(
            (
                a.dedup_key.replace(
                    str(a.custom_details["rollout_id"]), names[a.custom_details["rollout_id"]]
                ),
                a.summary,
                a.severity,
                {k: v for k, v in a.custom_details.items() if k != "rollout_id"},
            )
            for a in Alert.objects.filter(kind="rollout_auto_paused")
        ),
        "audit_chain_intact": AuditEntry.verify_chain()[1] is None,
    }


class _Undo(Exception):
    def __init__(self, outcome):
        self.outcome = outcome


def _run_and_undo(run) -> tuple[object, dict]:
    """Run one auto-pause path, capture what it wrote, and roll it back."""
    with pytest.raises(_Undo) as undone:
        with transaction.atomic():
            result = run()
            raise _Undo((result, _outcome()))
    return undone.value.outcome


def test_python_and_sql_auto_pause_give_the_same_result():
    expected = _fleet()
    py_result, py_outcome = _run_and_undo(
        lambda: [p.plugin_name for p in auto_pause_failing_rollouts(source="command")]
    )
    sql_result, sql_outcome = _run_and_undo(lambda: _sql("SELECT auto_pause_failing_rollouts()", [])[0][0])

    assert set(py_result) == expected and sql_result == len(expected)
    assert py_outcome == sql_outcome
    assert len(py_outcome["history"]) == len(expected) and py_outcome["audit_chain_intact"]


def test_both_paths_are_idempotent_together():
    expected = _fleet()
    ((count,),) = _sql("SELECT auto_pause_failing_rollouts()", [])
    assert count == len(expected)
    assert auto_pause_failing_rollouts(source="command") == []
    assert _sql("SELECT auto_pause_failing_rollouts()", []) == [(0,)]
    assert RollbackHistory.objects.filter(sira_triggered=True).count() == len(expected)
    assert set(AutoCheckRun.objects.values_list("source", flat=True)) == {"command", "sql"}
