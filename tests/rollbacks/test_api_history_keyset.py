"""GET rollback/history pages by keyset (before=<created_at>,<rollback_id>) as well as by offset."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import assert_error
from tests.factories import RollbackFactory

pytestmark = pytest.mark.django_db


def cursor(row: dict) -> str:
    return f"{row['created_at']},{row['rollback_id']}"


def test_keyset_pages_walk_the_same_rows_as_offset_pages_even_when_times_tie(cast):
    now = timezone.now()
    # Rows sharing a created_at: the rollback_id breaks the tie, so no row is skipped or repeated.
    for i in range(23):
        RollbackFactory(plugin_name="woocommerce", success=False, created_at=now - timedelta(minutes=i // 3))
    RollbackFactory(plugin_name="woocommerce", success=True)
    RollbackFactory(plugin_name="shopify", success=False)
    query = {"plugin_name": "woocommerce", "success": "false", "limit": 5}

    by_offset = []
    for offset in range(0, 25, 5):
        by_offset += cast.viewer.get("rollback/history", {**query, "offset": offset}).json()["rollbacks"]
    by_keyset, before = [], None
    while True:
        body = cast.viewer.get("rollback/history", {**query, **({"before": before} if before else {})}).json()
        assert body["total"] == 23 and set(body) == {"rollbacks", "total"}
        if not body["rollbacks"]:
            break
        by_keyset += body["rollbacks"]
        before = cursor(body["rollbacks"][-1])

    assert len(by_keyset) == 23
    assert [r["rollback_id"] for r in by_keyset] == [r["rollback_id"] for r in by_offset]


def test_a_cursor_with_an_unencoded_plus_still_works(cast):
    rows = [RollbackFactory(plugin_name="woocommerce") for _ in range(3)]
    newest = max(rows, key=lambda r: (r.created_at, r.rollback_id))
    # "+00:00" sent raw in a query string arrives as " 00:00".
    raw = f"{newest.created_at.isoformat()},{newest.rollback_id}".replace("+", " ")
    body = cast.viewer.get("rollback/history", {"before": raw}).json()
    assert len(body["rollbacks"]) == 2 and str(newest.rollback_id) not in {
        r["rollback_id"] for r in body["rollbacks"]
    }


@pytest.mark.parametrize(
    "before",
    [
        "not-a-cursor",
        "2026-11-29T08:00:00,not-a-uuid",
        "2026-11-29T08:00:00,6f1c2a7e-0000-4000-8000-000000000000",
    ],
)
def test_a_malformed_cursor_is_a_clear_400(cast, before):
    body = assert_error(cast.viewer.get("rollback/history", {"before": before}), 400)
    assert "before" in body["details"]


def test_before_and_offset_together_are_refused(cast):
    row = RollbackFactory()
    body = assert_error(
        cast.viewer.get(
            "rollback/history", {"before": f"{row.created_at.isoformat()},{row.rollback_id}", "offset": 5}
        ),
        400,
    )
    assert "before" in body["details"]


def test_keyset_history_is_for_readers_only(cast):
    assert_error(cast.plugin_a.get("rollback/history", {"before": "x"}), 403)
