"""Rows the shop deletes while an upgrade is in flight stay deleted after its rollback.

Snapshot mode restores a copy taken before the pause and merges the window's writes back: a
deletion is one of those writes. The smoke command (``webhook_smoke.py``) writes as the shop
does while checkout is paused -- deletes an order, deletes then re-inserts another -- and then
fails, so the automatic rollback runs with those writes in the live tables. On SQLite, which
has no snapshot mode, the same writes go through the modes it has.
"""

from __future__ import annotations

import signal
from decimal import Decimal

import pytest

from molam_agent.db import connect
from molam_agent.maintenance import flag_path

from .conftest import (
    NEW_ORDER,
    _host,
    build_plugin,
    create_database,
    release_in_mode,
    shop_writes_in_window,
)

INSERT_ORDER = (
    "INSERT INTO wp_molam_orders (id, order_ref, amount, currency, status, created_at)"
    " VALUES ({id}, '{ref}', {amount}, 'XOF', '{status}', '2024-03-01 10:00:00')"
)


def _delete(where: str) -> str:
    return f"DELETE FROM wp_molam_orders WHERE {where}"


@pytest.fixture
def snap_host(sql_host, small_release):
    """A plugin at 3.9.0 on MariaDB or PostgreSQL, offered a snapshot-mode 4.0.0."""
    release_in_mode(sql_host, small_release, "snapshot")
    return sql_host


def _shop_writes_in_window(host, statements: list[str]) -> None:
    """The snapshot release's smoke test runs ``statements`` as the shop, then reports unhealthy."""
    shop_writes_in_window(host, statements)
    host.write_config(database={"allow_snapshot": True})


def _orders(host, where: str) -> list[tuple]:
    """(id, order_ref, amount as "0.00", status) of the matching orders, by id."""
    with connect(host.db_url) as db:
        rows = db.query(
            f"SELECT id, order_ref, amount, status FROM wp_molam_orders WHERE {where} ORDER BY id"
        )
    cent = Decimal("0.01")
    return [
        (int(i), ref, str(Decimal(str(amount)).quantize(cent)), status) for i, ref, amount, status in rows
    ]


def _why(out: dict) -> tuple:
    return out.get("error"), out.get("_stderr", "")[-1500:]


def _orders_fingerprint(host) -> str:
    with connect(host.db_url) as db:
        return db.fingerprint("wp_molam_orders")


def test_a_row_the_shop_deleted_during_the_window_stays_deleted_after_the_rollback(snap_host):
    host = snap_host
    assert _orders(host, "id = 5")
    _shop_writes_in_window(
        host,
        [
            _delete("id = 5"),  # a row of the copy taken before the pause
            "UPDATE wp_molam_orders SET status = 'paid' WHERE id = 6",
            _delete("id = 6"),  # updated, then deleted
            NEW_ORDER.format(ref="MF-TEST-ORDER"),
            _delete("order_ref = 'MF-TEST-ORDER'"),  # created and deleted inside the window
            NEW_ORDER.format(ref="MF-KEPT"),
        ],
    )

    rc, out = host.run("upgrade")

    assert rc == 1 and out["rollback_status"] == "success", _why(out)
    assert host.installed() == "3.9.0"
    assert _orders(host, "id IN (5, 6)") == []
    assert _orders(host, "order_ref = 'MF-TEST-ORDER'") == []
    assert len(_orders(host, "order_ref = 'MF-KEPT'")) == 1
    with connect(host.db_url) as db:
        assert db.row_count("wp_molam_orders") == 2000 - 2 + 1
        assert "payload" in db.columns("wp_molam_orders")  # the old schema is back
        assert not [t for t in db.tables() if t.startswith("molam_snap_")]
    # Deletions count as rows merged back (two deleted, one inserted).
    assert sum(out["kept_tables"].values()) == 3, out["kept_tables"]


def test_a_row_deleted_then_re_inserted_comes_back_with_its_latest_content(snap_host):
    host = snap_host
    _shop_writes_in_window(
        host,
        [
            _delete("id = 7"),
            INSERT_ORDER.format(id=7, ref="MF-7-AGAIN", amount="77.70", status="disputed"),
            _delete("id = 8"),
            INSERT_ORDER.format(id=8, ref="MF-8-AGAIN", amount="88.80", status="paid"),
            _delete("id = 8"),  # deleted, re-inserted, deleted again: the last word is delete
            INSERT_ORDER.format(id=9, ref="MF-9-FIRST", amount="1.00", status="pending"),
            _delete("id = 9"),
            INSERT_ORDER.format(id=9, ref="MF-9-LAST", amount="9.90", status="refunded"),
        ],
    )
    with connect(host.db_url) as db:
        db.execute(_delete("id = 9"))  # id 9 is free before the upgrade starts

    rc, out = host.run("upgrade")

    assert rc == 1 and out["rollback_status"] == "success", _why(out)
    assert _orders(host, "id IN (7, 8, 9)") == [
        (7, "MF-7-AGAIN", "77.70", "disputed"),
        (9, "MF-9-LAST", "9.90", "refunded"),
    ]


def test_a_kill_after_the_merge_back_applies_nothing_twice(snap_host):
    host = snap_host
    _shop_writes_in_window(
        host,
        [
            _delete("id = 5"),
            "UPDATE wp_molam_orders SET status = 'paid' WHERE id = 1",
            NEW_ORDER.format(ref="MF-WEBHOOK"),
        ],
    )

    # Killed after the merge-back committed, before the journal says so: recovery merges again.
    rc, _ = host.run("upgrade", env={"MOLAM_AGENT_FAULT": "restore:merged"})
    assert rc == -signal.SIGKILL
    assert _orders(host, "id = 5") == []
    assert _orders(host, "id = 1")[0][3] == "paid"
    # The shop writes on before recovery: it restores order 5, refunds the webhook's order and
    # deletes order 1. A second merge-back must undo none of it.
    with connect(host.db_url) as db:
        db.execute(INSERT_ORDER.format(id=5, ref="MF-5-RESTORED", amount="5.50", status="pending"))
        db.execute("UPDATE wp_molam_orders SET status = 'refunded' WHERE order_ref = 'MF-WEBHOOK'")
        db.execute(_delete("id = 1"))
    rc, out = host.run("recover")

    assert rc == 1 and out["rollback_status"] == "success", _why(out)
    assert host.installed() == "3.9.0"
    assert _orders(host, "id = 5") == [(5, "MF-5-RESTORED", "5.50", "pending")]
    assert [r[3] for r in _orders(host, "order_ref = 'MF-WEBHOOK'")] == ["refunded"]
    assert _orders(host, "id = 1") == []
    with connect(host.db_url) as db:
        assert not [t for t in db.tables() if t.endswith("_chg")]

    before = _orders_fingerprint(host)
    rc, again = host.run("recover")
    assert rc == 0, again
    assert _orders_fingerprint(host) == before  # a second recover changes nothing


@pytest.mark.parametrize("point", ["files_restored", "restore:tables-renamed", "db_restored"])
def test_a_kill_during_the_rollback_keeps_the_window_writes_and_deletions(snap_host, point):
    host = snap_host
    _shop_writes_in_window(
        host,
        [
            "UPDATE wp_molam_orders SET status = 'paid' WHERE id = 1",
            _delete("id = 5"),
            NEW_ORDER.format(ref="MF-WEBHOOK"),
        ],
    )

    rc, _ = host.run("upgrade", env={"MOLAM_AGENT_FAULT": point})
    assert rc == -signal.SIGKILL
    rc, out = host.run("recover")

    assert rc == 1 and out["rollback_status"] == "success", _why(out)
    assert host.installed() == "3.9.0"
    assert _orders(host, "id = 1")[0][3] == "paid"
    assert _orders(host, "id = 5") == []
    assert len(_orders(host, "order_ref = 'MF-WEBHOOK'")) == 1
    assert not flag_path(host.plugin_dir).exists()
    with connect(host.db_url) as db:
        assert "payload" in db.columns("wp_molam_orders")  # the old schema is back
        assert not [t for t in db.tables() if t.endswith("_chg")]


def test_a_deletion_after_the_restore_is_not_undone_by_the_merge_back(snap_host):
    host = snap_host
    _shop_writes_in_window(host, ["UPDATE wp_molam_orders SET status = 'paid' WHERE id = 2"])

    # Killed with the copies renamed back but nothing merged yet; the shop then deletes the
    # order it paid during the window. The merge-back must not bring it back.
    rc, _ = host.run("upgrade", env={"MOLAM_AGENT_FAULT": "restore:tables-renamed"})
    assert rc == -signal.SIGKILL
    with connect(host.db_url) as db:
        db.execute(_delete("id = 2"))
    rc, out = host.run("recover")

    assert rc == 1 and out["rollback_status"] == "success", _why(out)
    assert _orders(host, "id = 2") == []


@pytest.mark.parametrize("mode", ["expand", "down"])
@pytest.mark.parametrize("engine", ["mysql", "postgresql", "sqlite"])
def test_a_row_deleted_during_the_window_stays_deleted_in_every_engine_and_mode(
    tmp_path, control_plane, small_release, engine, mode
):
    url, cleanup = create_database(engine, tmp_path, rows=2000)
    try:
        host = _host(tmp_path, control_plane, url)
        build_plugin(host.plugin_dir, "3.9.0")
        shop_writes_in_window(
            host,
            [
                _delete("id = 5"),
                _delete("id = 6"),
                INSERT_ORDER.format(id=6, ref="MF-6-AGAIN", amount="6.60", status="paid"),
            ],
        )
        release_in_mode(host, small_release, mode)

        rc, out = host.run("upgrade")

        assert rc == 1 and out["rollback_status"] == "success", _why(out)
        assert _orders(host, "id IN (5, 6)") == [(6, "MF-6-AGAIN", "6.60", "paid")]
    finally:
        cleanup()


def test_snapshot_mode_is_refused_on_sqlite_so_no_copy_can_bring_a_row_back(
    tmp_path, control_plane, small_release
):
    url, cleanup = create_database("sqlite", tmp_path, rows=2000)
    try:
        host = _host(tmp_path, control_plane, url)
        build_plugin(host.plugin_dir, "3.9.0")
        release_in_mode(host, small_release, "snapshot")

        rc, out = host.run("upgrade")

        assert rc == 1 and out["rollback_status"] == "not_required", out
        assert "allow_snapshot" in out["error"] and "down" in out["error"]
        assert host.installed() == "3.9.0"
        with connect(url) as db:
            assert not [t for t in db.tables() if t.startswith("molam_")]
    finally:
        cleanup()
