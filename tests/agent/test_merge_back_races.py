"""A shop write that races the snapshot-mode merge-back is never undone by it.

The merge-back replays the window's writes on the restored table one batch of keys at a time:
lock the batch's rows, leave out the keys written since the restore (phase ``r``), then upsert
or delete. A key the window inserted has no row in the restored table, so there is no row to
lock: the shop may write that key between the check and the upsert. These tests run the
capture, the restore and the merge with the agent's own ``Database`` methods on a real server
and make the shop write at exactly that moment, from another connection.
"""

from __future__ import annotations

import threading

import pytest

from molam_agent.db import connect

from .conftest import create_database

LIVE, SNAP, KEPT, CHG, TRG = "wp_molam_settings", "t_snap", "t_kept", "t_chg", "t_trg"


def _window(db) -> None:
    """Capture triggers and the copy, as before the pause; then the rename of the rollback."""
    db.create_change_log(CHG)
    db.install_capture(LIVE, TRG + "_w", CHG, LIVE, "w")
    db.copy_table(LIVE, SNAP)
    db.install_capture(SNAP, TRG + "_r", CHG, LIVE, "r")


def _setting(url: str, name: str) -> list[tuple]:
    with connect(url) as db:
        return db.query(f"SELECT value FROM {LIVE} WHERE name = {db.ph}", (name,))


@pytest.mark.parametrize("engine", ["mysql", "postgresql"])
def test_a_shop_upsert_of_a_key_the_window_inserted_wins_over_the_merge(tmp_path, engine):
    url, cleanup = create_database(engine, tmp_path, rows=10)
    shop_error: list[BaseException] = []
    try:
        with connect(url) as db, connect(url) as shop:
            _window(db)
            # During the window: a setting the old table's copy does not have.
            shop.execute(f"INSERT INTO {LIVE} (name, value) VALUES ('fx_rate', 'window')")
            db.restore_snapshot([(LIVE, SNAP, KEPT)])
            upsert = f"INSERT INTO {LIVE} (name, value) VALUES ('fx_rate', 'shop')" + (
                " ON DUPLICATE KEY UPDATE value = 'shop'"
                if engine == "mysql"
                else " ON CONFLICT (name) DO UPDATE SET value = 'shop'"
            )

            def shop_write() -> None:
                try:
                    shop.execute(upsert)
                except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                    shop_error.append(exc)

            # The shop writes the key right after the merge checked phase r, before it upserts.
            query = db.query
            writer = threading.Thread(target=shop_write)

            def query_then_race(sql, params=()):
                rows = query(sql, params)
                if "phase = 'r'" in sql and not writer.is_alive() and writer.ident is None:
                    writer.start()
                    writer.join(2)  # returns at once unless the merge's locks hold it back
                return rows

            db.query = query_then_race
            db.merge_back(LIVE, KEPT, CHG, LIVE)
            writer.join(30)
            assert writer.ident is not None, "the merge never checked phase r"
            assert not writer.is_alive()
        assert not shop_error, shop_error
        # The shop's write came after the window's: it is the one that stays.
        assert _setting(url, "fx_rate") == [("shop",)]
    finally:
        cleanup()
