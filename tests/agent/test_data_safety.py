"""Each data-safety defect of the migration-policy issue, reproduced on MariaDB and PostgreSQL.

A smoke command (``webhook_smoke.py``) writes like the shop does while checkout is paused --
a payment webhook marking order 1 paid, a new order -- and then fails, so the automatic
rollback runs with those writes in the live tables.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest

from molam_agent.db import connect
from molam_agent.maintenance import flag_path, is_active

from .conftest import (
    NEW_ORDER,
    SNAPSHOT_MIGRATIONS,
    _host,
    build_plugin,
    create_database,
    release_in_mode,
    shop_writes_in_window,
)

PAY_ORDER_1 = "UPDATE wp_molam_orders SET status = 'paid' WHERE id = 1"


def _order(host, where: str) -> tuple | None:
    with connect(host.db_url) as db:
        rows = db.query(f"SELECT id, status FROM wp_molam_orders WHERE {where}")
    return rows[0] if rows else None


@pytest.mark.parametrize("mode", ["expand", "down", "snapshot"])
def test_a_write_during_the_window_survives_the_automatic_rollback(sql_host, small_release, mode):
    host = sql_host
    assert _order(host, "id = 1")[1] == "pending"
    shop_writes_in_window(host, [PAY_ORDER_1, NEW_ORDER.format(ref="MF-WEBHOOK")])
    release_in_mode(host, small_release, mode)

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert out["rollback_status"] == "success", out
    assert host.installed() == "3.9.0"
    assert _order(host, "id = 1")[1] == "paid"  # the webhook's write is live, not reverted
    assert _order(host, "order_ref = 'MF-WEBHOOK'") is not None
    with connect(host.db_url) as db:
        kept = [t for t in db.tables() if "_kept_" in t]
        if mode == "snapshot":
            assert kept and out["kept_tables"]
            assert sum(out["kept_tables"].values()) >= 2  # both rows merged back
        else:
            assert kept == []  # nothing was copied aside, nothing needed merging
        assert "molam_snap" not in " ".join(db.tables())


@pytest.mark.parametrize("mode", ["expand", "down", "snapshot"])
def test_an_order_taken_after_a_crash_before_recover_is_kept(sql_host, small_release, mode):
    host = sql_host
    release_in_mode(host, small_release, mode)

    rc, _ = host.run("upgrade", env={"MOLAM_AGENT_FAULT": "verified"})
    assert rc == -signal.SIGKILL
    with connect(host.db_url) as db:  # the flag expired; the shop writes on the new version
        db.execute(PAY_ORDER_1)
        db.execute(NEW_ORDER.format(ref="MF-AFTER-CRASH"))
    rc, out = host.run("recover")

    assert rc == 1 and out["rollback_status"] == "success", out
    assert host.installed() == "3.9.0"
    assert _order(host, "id = 1")[1] == "paid"
    assert _order(host, "order_ref = 'MF-AFTER-CRASH'") is not None


@pytest.mark.parametrize("mode", ["expand", "snapshot"])
def test_the_rollback_drops_no_table_the_migrations_did_not_create(sql_host, small_release, mode):
    host = sql_host
    shop_writes_in_window(host, ["CREATE TABLE wp_other_plugin_log (id INT PRIMARY KEY)"])
    release_in_mode(host, small_release, mode)

    rc, out = host.run("upgrade")

    assert rc == 1 and out["rollback_status"] == "success", out
    assert out["dropped_tables"] == []
    with connect(host.db_url) as db:
        assert "wp_other_plugin_log" in db.tables()


def test_expand_only_release_keeps_its_schema_recorded_and_a_later_upgrade_does_not_rerun_it(
    sql_host, small_release
):
    host = sql_host
    with connect(host.db_url) as db:
        rows_before = db.query("SELECT id, status, amount FROM wp_molam_orders ORDER BY id")
    release_in_mode(host, small_release, "expand", health="broken")

    rc, out = host.run("upgrade")

    assert rc == 1 and out["rollback_status"] == "success", out
    with connect(host.db_url) as db:
        # Additive schema stays (old code ignores it) and stays recorded; no row was touched.
        assert "fee_amount" in db.columns("wp_molam_orders")
        assert "wp_molam_refunds" in db.tables()
        assert db.query("SELECT id, status, amount FROM wp_molam_orders ORDER BY id") == rows_before
        records = dict(db.query("SELECT file_name, applied_at FROM molam_agent_migrations"))
        # 002 inserted an option row, which the rollback put back: it is no longer applied.
        assert list(records) == ["001_fee_column.sql"]
        assert not db.query("SELECT 1 FROM wp_options WHERE option_name = 'molam_v4_flag'")

    host.smoke = {}
    host.write_config()
    release_in_mode(host, small_release, "expand", version="4.0.1")
    rc, out = host.run("upgrade")

    assert rc == 0 and out["status"] == "success", out
    with connect(host.db_url) as db:
        again = dict(db.query("SELECT file_name, applied_at FROM molam_agent_migrations"))
        assert again["001_fee_column.sql"] == records["001_fee_column.sql"]  # not re-run
        assert "002_refunds.sql" in again
        assert db.query("SELECT option_value FROM wp_options WHERE option_name = 'molam_v4_flag'") == [("1",)]


def test_a_contract_release_without_down_files_is_refused_unless_snapshot_mode(sql_host, small_release):
    host = sql_host
    zip_path, _ = small_release("4.0.0", migrations=SNAPSHOT_MIGRATIONS)
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, out = host.run("upgrade")

    assert rc == 1 and out["status"] == "failed", out
    assert out["rollback_status"] == "not_required"
    assert "down" in out["error"] and "allow_snapshot" in out["error"]
    assert host.installed() == "3.9.0"
    assert not host.cp.state.posts("rollback/initiate")  # refused before any pause


def test_a_migration_naming_a_table_outside_the_plugin_is_refused_before_the_pause(sql_host, small_release):
    host = sql_host
    zip_path, _ = small_release(
        "4.0.0", migrations={"001_users.sql": "ALTER TABLE wp_users ADD COLUMN x INT;"}
    )
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, out = host.run("upgrade")

    assert rc == 1 and out["rollback_status"] == "not_required", out
    assert "refused" in out["error"] and "wp_users" in out["error"]
    assert host.installed() == "3.9.0"
    assert not flag_path(host.plugin_dir).exists()


def _hold_table(host, seconds: float, ready: threading.Event) -> threading.Thread:
    """Another session keeps a transaction open on wp_molam_orders (like mysqldump)."""

    def run() -> None:
        with connect(host.db_url) as db:
            db.begin()
            db.query("SELECT id FROM wp_molam_orders WHERE id = 1")
            ready.set()
            time.sleep(seconds)
            db.rollback()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(10)
    return t


def test_a_lock_held_by_the_shop_ends_in_a_rollback_within_seconds_not_a_paused_shop(sql_host, small_release):
    host = sql_host
    release_in_mode(host, small_release, "down")
    host.write_config(database={"long_transaction_s": 3600, "lock_timeout_s": 1, "lock_retries": 2})
    holder = _hold_table(host, 40, threading.Event())
    start = time.monotonic()

    rc, out = host.run("upgrade")

    elapsed = time.monotonic() - start
    assert rc == 1 and out["rollback_status"] == "success", out
    assert "001_fee_column.sql" in out["error"]
    assert elapsed < 30, elapsed  # not MariaDB's 86,400 s default, not PostgreSQL's forever
    assert not is_active(host.plugin_dir)
    assert host.installed() == "3.9.0"
    holder.join(0)


def test_a_long_transaction_on_the_plugin_tables_prevents_the_pause(sql_host, small_release):
    host = sql_host
    release_in_mode(host, small_release, "down")
    host.write_config(database={"long_transaction_s": 1, "lock_timeout_s": 1, "lock_retries": 2})
    _hold_table(host, 20, threading.Event())
    time.sleep(2)

    rc, out = host.run("upgrade")

    assert rc == 1 and out["rollback_status"] == "not_required", out
    assert "long transactions" in out["error"]
    assert host.installed() == "3.9.0"
    assert not host.cp.state.posts("rollback/initiate")


def test_auto_increment_is_raised_before_the_rename(tmp_path, control_plane, small_release):
    url, cleanup = create_database("mysql", tmp_path, rows=2000)
    try:
        host = _host(tmp_path, control_plane, url)
        build_plugin(host.plugin_dir, "3.9.0")
        shop_writes_in_window(host, [NEW_ORDER.format(ref=f"MF-W{i}") for i in range(3)])
        release_in_mode(host, small_release, "snapshot")

        rc, out = host.run("upgrade")

        assert rc == 1 and out["rollback_status"] == "success", (out["error"], out["_stderr"][-1500:])
        with connect(url) as db:
            window = db.query("SELECT id FROM wp_molam_orders WHERE order_ref LIKE 'MF-W%' ORDER BY id")
            assert len(window) == 3
            db.execute(NEW_ORDER.format(ref="MF-NEXT"))
            [(next_id,)] = db.query("SELECT id FROM wp_molam_orders WHERE order_ref = 'MF-NEXT'")
            assert next_id > window[-1][0]
            assert db.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM wp_molam_orders")[0] == (2004, 2004)
    finally:
        cleanup()


def test_two_sites_on_one_database_keep_their_own_snapshots_and_records(
    tmp_path, control_plane, small_release
):
    url, cleanup = create_database("mysql", tmp_path, rows=2000)
    try:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a = _host(tmp_path / "a", control_plane, url)
        b = _host(tmp_path / "b", control_plane, url)
        build_plugin(a.plugin_dir, "3.9.0")
        build_plugin(b.plugin_dir, "3.9.0", seed=3)
        with connect(url) as db:
            db.execute("CREATE TABLE wp2_molam_orders (id INT PRIMARY KEY, status VARCHAR(16))")
        # Site A stops with its snapshot taken (snapshot mode): its copies are in the database.
        release_in_mode(a, small_release, "snapshot")
        rc, _ = a.run("upgrade", env={"MOLAM_AGENT_FAULT": "snapshot_done"})
        assert rc == -signal.SIGKILL
        with connect(url) as db:
            a_snaps = [t for t in db.tables() if t.startswith("molam_snap_")]
        assert a_snaps

        # Site B, other tables, same migration file name: it runs, and B's prune spares A.
        zip_b, _ = small_release(
            "4.0.0", migrations={"001_fee_column.sql": "CREATE TABLE wp2_molam_log (id INT);"}
        )
        b.publish(zip_b, "4.0.0")
        b.write_config(database={"tables": ["wp2_molam_*"], "options": {}})
        rc, out = b.run("upgrade")
        assert rc == 0 and out["status"] == "success", out
        rc, pruned = b.run("prune")
        assert rc == 0, pruned
        with connect(url) as db:
            assert "wp2_molam_log" in db.tables()
            assert set(a_snaps) <= db.tables()
            sites = db.query("SELECT DISTINCT site FROM molam_agent_migrations")
            assert len(sites) == 1  # only B applied something so far

        # A's snapshot disappears behind its back: the rollback must fail, never "restore".
        release_in_mode(a, small_release, "snapshot")
        rc, _ = a.run("recover")  # abandons the interrupted upgrade, drops its own copies
        rc, _ = a.run("upgrade", env={"MOLAM_AGENT_FAULT": "migrations_done"})
        assert rc == -signal.SIGKILL
        with connect(url) as db:
            snap = sorted(
                t for t in db.tables() if t.startswith("molam_snap_") and not t.endswith(("_chg", "_opt"))
            )
            db.drop_tables(snap)
        rc, out = a.run("recover")

        assert rc == 2 and out["rollback_status"] == "failed", out
        assert "missing" in out["error"]
        assert is_active(a.plugin_dir, now=time.time() + 30 * 86400)  # checkout stays paused
        failed = [r for r in control_plane.state.rollbacks.values() if r.get("success") is False]
        assert failed and "missing" in failed[-1]["error_message"]
    finally:
        cleanup()


def test_a_kill_during_the_backup_leaves_no_plaintext_rows_after_recovery(sql_host, small_release):
    host = sql_host
    release_in_mode(host, small_release, "expand")

    rc, _ = host.run("upgrade", env={"MOLAM_AGENT_FAULT": "backup:db-written"})
    assert rc == -signal.SIGKILL
    assert list(host.state_dir.rglob("*.jsonl"))  # orders and options, in clear, on disk
    rc, out = host.run("recover")

    assert rc in (0, 1), out
    assert not list(host.state_dir.rglob("*.jsonl"))
    assert not list(host.plugin_dir.parent.rglob("*.jsonl"))


def test_a_mount_point_plugin_directory_is_refused_before_the_pause(sql_host, small_release):
    host = sql_host
    release_in_mode(host, small_release, "expand")
    proc = subprocess.run(
        ["mount", "--bind", str(host.plugin_dir), str(host.plugin_dir)], capture_output=True
    )
    assert proc.returncode == 0, f"this test needs bind mounts (root): {proc.stderr!r}"
    try:
        rc, out = host.run("upgrade")
    finally:
        subprocess.run(["umount", str(host.plugin_dir)], check=True)

    assert rc in (1, 64), out
    assert "mount point" in (out.get("error") or "")
    assert not host.cp.state.backups  # refused before the backup, long before any pause
    assert host.installed() == "3.9.0"


def test_a_pause_past_its_deadline_ends_in_a_rollback(sql_host, small_release):
    host = sql_host
    release_in_mode(host, small_release, "down")
    # The first migration waits on the shop's lock for ~12 s (retried), then gets through:
    # by then the pause has passed max_pause_s, so the agent rolls back instead of going on.
    host.write_config(
        database={"long_transaction_s": 3600, "lock_timeout_s": 5, "lock_retries": 3},
        maintenance={"max_pause_s": 10},
    )
    _hold_table(host, 14, threading.Event())

    rc, out = host.run("upgrade")

    assert rc == 1 and out["rollback_status"] == "success", out
    assert "paused longer than 10s" in out["error"]
    assert host.installed() == "3.9.0"
    assert not is_active(host.plugin_dir)
    with connect(host.db_url) as db:
        assert "fee_amount" not in db.columns("wp_molam_orders")  # its down file ran


def test_site_id_and_table_patterns_are_validated(tmp_path):
    from molam_agent.config import load_config
    from molam_agent.errors import ConfigError

    base = {
        "MOLAM_AGENT_CONTROL_PLANE_URL": "https://cp.example/api/plugins/",
        "MOLAM_AGENT_CONTROL_PLANE_TOKEN": "t",
        "MOLAM_AGENT_CONTROL_PLANE_MERCHANT_ID": "123e4567-e89b-12d3-a456-426614174000",
        "MOLAM_AGENT_PLUGIN_NAME": "woocommerce",
        "MOLAM_AGENT_PLUGIN_DIR": str(tmp_path),
        "MOLAM_AGENT_RELEASE_ALLOW_UNSIGNED": "true",
        "MOLAM_AGENT_DATABASE_URL": "sqlite:///tmp/x.db",
        "MOLAM_AGENT_DATABASE_TABLES": "wp_molam_*,wp_molam_settings",
    }
    cfg = load_config(None, dict(base, MOLAM_AGENT_DATABASE_SITE_ID="shop1"))
    assert cfg.db_site_id == "shop1" and cfg.db_tables == ("wp_molam_*", "wp_molam_settings")
    assert cfg.db_lock_timeout_s == 2.0 and cfg.db_allow_snapshot is False
    with pytest.raises(ConfigError, match="site_id"):
        load_config(None, dict(base, MOLAM_AGENT_DATABASE_SITE_ID="Shop 1"))
    with pytest.raises(ConfigError, match="plain table name"):
        load_config(None, dict(base, MOLAM_AGENT_DATABASE_TABLES="wp_*_orders"))
