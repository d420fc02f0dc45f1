from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import MERCHANT_A, MERCHANT_B, assert_error
from tests.factories import PendingRollbackFactory, RollbackFactory

pytestmark = pytest.mark.django_db

HISTORY_KEYS = {
    "rollback_id",
    "merchant_id",
    "plugin_name",
    "from_version",
    "to_version",
    "rollback_trigger",
    "success",
    "duration_ms",
    "files_restored",
    "db_restored",
    "reason",
    "error_message",
    "sira_triggered",
    "error_rate_detected",
    "created_at",
    "completed_at",
}


def test_history_is_newest_first_with_the_seed_keys(cast):
    now = timezone.now()
    old = RollbackFactory(created_at=now - timedelta(days=2))
    new = RollbackFactory(created_at=now - timedelta(hours=1))
    body = cast.viewer.get("rollback/history").json()
    assert body["total"] == 2
    assert [r["rollback_id"] for r in body["rollbacks"]] == [
        str(new.rollback_id),
        str(old.rollback_id),
    ]
    assert HISTORY_KEYS <= set(body["rollbacks"][0])


def test_history_filters(cast):
    RollbackFactory(merchant_id=MERCHANT_A, plugin_name="woocommerce", success=True)
    RollbackFactory(merchant_id=MERCHANT_A, plugin_name="prestashop", success=False)
    RollbackFactory(merchant_id=MERCHANT_B, plugin_name="woocommerce", rollback_trigger="operator_forced")

    def total(**params):
        return cast.ops.get("rollback/history", params).json()["total"]

    assert total(merchant_id=str(MERCHANT_A)) == 2
    assert total(plugin_name="woocommerce") == 2
    assert total(merchant_id=str(MERCHANT_A), plugin_name="woocommerce") == 1
    assert total(success="false") == 1
    assert total(trigger="operator_forced") == 1


def test_history_pagination(cast):
    now = timezone.now()
    rows = [RollbackFactory(created_at=now - timedelta(minutes=i)) for i in range(7)]
    body = cast.ops.get("rollback/history", {"limit": 3, "offset": 2}).json()
    assert body["total"] == 7
    assert [r["rollback_id"] for r in body["rollbacks"]] == [str(r.rollback_id) for r in rows[2:5]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "ten"},
        {"offset": -1},
        {"merchant_id": "nope"},
        {"trigger": "sometimes"},
    ],
)
def test_history_rejects_bad_query_parameters(cast, params):
    assert_error(cast.ops.get("rollback/history", params), 400)


def test_history_query_count_is_bounded(cast, django_assert_max_num_queries):
    for _ in range(30):
        RollbackFactory()
    with django_assert_max_num_queries(4):
        assert len(cast.ops.get("rollback/history").json()["rollbacks"]) == 30


def test_stats_arithmetic(cast):
    now = timezone.now()
    # woocommerce: 3 completed (2 ok), durations 1000/2000/3001 → 2000 avg, 66.67 %
    RollbackFactory(
        plugin_name="woocommerce",
        success=True,
        duration_ms=1000,
        created_at=now - timedelta(hours=2),
    )
    RollbackFactory(
        plugin_name="woocommerce",
        success=True,
        duration_ms=2000,
        created_at=now - timedelta(days=3),
    )
    RollbackFactory(
        plugin_name="woocommerce",
        success=False,
        duration_ms=3001,
        created_at=now - timedelta(days=3),
    )
    # prestashop: 1 failed, 10 days ago (outside 7 d)
    RollbackFactory(
        plugin_name="prestashop",
        success=False,
        duration_ms=500,
        created_at=now - timedelta(days=10),
    )
    # in progress: not counted
    PendingRollbackFactory(plugin_name="woocommerce", created_at=now)

    body = cast.viewer.get("rollback/stats").json()

    assert body["success_rate_by_plugin"] == [
        {
            "plugin_name": "prestashop",
            "total_rollbacks": 1,
            "successful_rollbacks": 0,
            "success_rate_pct": 0.0,
            "avg_duration_ms": 500,
        },
        {
            "plugin_name": "woocommerce",
            "total_rollbacks": 3,
            "successful_rollbacks": 2,
            "success_rate_pct": 66.67,
            "avg_duration_ms": 2000,
        },
    ]
    assert body["rollbacks_last_24h"] == 1
    assert body["failed_rollbacks_last_7d"] == 1
    assert body["overall_success_rate_pct"] == 50.0


def test_stats_on_an_empty_fleet(cast):
    body = cast.viewer.get("rollback/stats").json()
    assert body["success_rate_by_plugin"] == []
    assert body["rollbacks_last_24h"] == 0 and body["failed_rollbacks_last_7d"] == 0


def test_stats_carry_the_seed_kpis_against_their_targets(cast):
    from tests.factories import RolloutFactory

    now = timezone.now()
    for i in range(19):
        RollbackFactory(success=True, duration_ms=1200, created_at=now - timedelta(days=i % 10))
    RollbackFactory(success=False, duration_ms=4000, created_at=now - timedelta(days=1))
    RolloutFactory(created_at=now - timedelta(days=4), full_rollout_at=now, status="completed")
    RolloutFactory(
        created_at=now - timedelta(days=10), full_rollout_at=now - timedelta(days=1), status="completed"
    )
    kpis = cast.viewer.get("rollback/stats").json()["kpis"]
    assert kpis["rollback_success_rate_pct"] == {
        "value": 95.0,
        "target": 95.0,
        "comparison": ">",
        "ok": False,
    }
    assert kpis["avg_rollback_duration_ms"]["value"] == round((19 * 1200 + 4000) / 20)
    assert kpis["avg_rollback_duration_ms"]["ok"] is True
    assert kpis["failed_rollbacks_7d"] == {"value": 1, "target": 5, "comparison": "<=", "ok": True}
    assert kpis["rollout_velocity_days"]["value"] == 6.5  # median of 4 and 9 days
    series = kpis["rollbacks_per_day"]["series"]
    assert len(series) == 14 and series[-1]["date"] == now.date().isoformat()
    assert sum(d["successful"] + d["failed"] for d in series) == 20


def test_the_per_plugin_list_is_written_as_drf_writes_each_item():
    from rollbacks.api.serializers import PluginRollbackStatsSerializer

    rows = [
        {
            "plugin_name": "woocommerce",
            "total_rollbacks": 3,
            "successful_rollbacks": 2,
            "success_rate_pct": 66.67,
            "avg_duration_ms": 2000,
        },
        {
            "plugin_name": "prestashop",
            "total_rollbacks": 1,
            "successful_rollbacks": 0,
            "success_rate_pct": 0.0,
            "avg_duration_ms": None,
        },
        {
            "plugin_name": "shopify",
            "total_rollbacks": 10,
            "successful_rollbacks": 10,
            "success_rate_pct": 100,
            "avg_duration_ms": 812,
            "not_declared": "left out",
        },
    ]
    listed = PluginRollbackStatsSerializer(rows, many=True).data
    one_by_one = [PluginRollbackStatsSerializer(row).data for row in rows]
    assert [list(item.items()) for item in listed] == [list(item.items()) for item in one_by_one]
    assert [type(v) for v in listed[2].values()] == [str, int, int, int, int]


def test_stats_keep_their_keys_and_types_for_many_plugins(cast):
    for i in range(30):
        RollbackFactory(
            plugin_name=f"plugin-{i:02d}", success=i % 4 != 0, duration_ms=None if i == 7 else 900 + i
        )
    body = cast.viewer.get("rollback/stats").json()
    rows = body["success_rate_by_plugin"]
    assert [row["plugin_name"] for row in rows] == [f"plugin-{i:02d}" for i in range(30)]
    for row in rows:
        assert list(row) == [
            "plugin_name",
            "total_rollbacks",
            "successful_rollbacks",
            "success_rate_pct",
            "avg_duration_ms",
        ]
    assert rows[0]["success_rate_pct"] == 0.0 and rows[1]["success_rate_pct"] == 100.0
    assert rows[7]["avg_duration_ms"] is None and rows[8]["avg_duration_ms"] == 908
    assert body["total_rollbacks"] == 30 and body["overall_success_rate_pct"] == 73.33
    assert body["avg_duration_ms"] == round(sum(900 + i for i in range(30) if i != 7) / 29)
