"""Manual and operator-forced rollbacks, kept rows, dry runs, status and prune."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from molam_agent.db import connect

from .conftest import GOOD_MIGRATIONS, MERCHANT, SNAPSHOT_MIGRATIONS, db_state, up_only


def _upgrade(host, release, version="4.0.0", **kwargs):
    zip_path, _ = release(version, migrations=GOOD_MIGRATIONS, **kwargs)
    host.publish(zip_path, version)
    host.write_config()
    rc, out = host.run("upgrade")
    assert rc == 0, out
    return out


def test_manual_rollback_keeps_rows_written_after_the_backup_in_the_live_table(db_host, small_release):
    host = db_host
    before_tree = host.fingerprint()
    before_db = db_state(host.db_url)
    _upgrade(host, small_release)
    with connect(host.db_url) as db:
        before_orders = db.row_count("wp_molam_orders")
    with connect(host.db_url) as db:
        # Orders taken on 4.0.0, after the backup.
        for i in range(3):
            db.execute(
                "INSERT INTO wp_molam_orders (order_ref, amount, currency, status, created_at, payload, fee_amount)"
                f" VALUES ('MF-NEW-{i}', 10, 'XOF', 'paid', '2024-02-01 00:00:00', 'new', 1)"
            )

    rc, out = host.run("rollback", "--to", "3.9.0")

    assert rc == 0, out
    assert out["status"] == "success" and out["rollback_status"] == "success"
    assert (out["from_version"], out["to_version"]) == ("4.0.0", "3.9.0")
    assert host.installed() == "3.9.0"
    assert host.fingerprint() == before_tree
    after = db_state(host.db_url)
    after.pop("molam_agent_migrations")
    # The down files undid 4.0.0's schema and settings; the orders taken on 4.0.0 stay live.
    assert after["wp_molam_settings"] == before_db["wp_molam_settings"]
    assert after["options"] == before_db["options"]
    assert out["kept_tables"] == {}
    with connect(host.db_url) as db:
        assert "wp_molam_refunds" not in db.tables()
        assert "fee_amount" not in db.columns("wp_molam_orders")
        assert db.row_count("wp_molam_orders") == before_orders + 3
        rows = db.query("SELECT order_ref FROM wp_molam_orders WHERE order_ref LIKE 'MF-NEW-%' ORDER BY 1")
        assert [r[0] for r in rows] == ["MF-NEW-0", "MF-NEW-1", "MF-NEW-2"]
        assert not [t for t in db.tables() if "_kept_" in t]
    state = host.cp.state
    [initiate] = state.posts("rollback/initiate")
    assert initiate["trigger"] == "manual" and initiate["to_version"] == "3.9.0"
    [complete] = state.posts("/complete")
    assert complete["success"] is True and complete["kept_tables"] == []


def test_new_orders_get_ids_after_the_kept_ones(mysql_host, small_release):
    host = mysql_host
    _upgrade(host, small_release)
    with connect(host.db_url) as db:
        db.execute(
            "INSERT INTO wp_molam_orders (order_ref, amount, currency, status, created_at)"
            " VALUES ('MF-NEW', 10, 'XOF', 'paid', '2024-02-01')"
        )
        new_id = db.query("SELECT MAX(id) FROM wp_molam_orders")[0][0]
    rc, out = host.run("rollback", "--to", "3.9.0")
    assert rc == 0, out
    with connect(host.db_url) as db:
        db.execute(
            "INSERT INTO wp_molam_orders (order_ref, amount, currency, status, created_at)"
            " VALUES ('MF-AFTER', 10, 'XOF', 'paid', '2024-02-02')"
        )
        after_id = db.query("SELECT id FROM wp_molam_orders WHERE order_ref = 'MF-AFTER'")[0][0]
    assert after_id > new_id  # no order id is handed out twice


def test_rollback_to_an_older_version_uses_the_encrypted_archive(db_host, small_release):
    host = db_host
    before_tree = host.fingerprint()
    before_db = db_state(host.db_url)
    _upgrade(host, small_release, "4.0.0")
    zip_path, _ = small_release("4.1.0")
    host.publish(zip_path, "4.1.0")
    rc, out = host.run("upgrade")
    assert rc == 0, out

    rc, status = host.run("status")
    assert status["instant_rollback_to"] == ["4.0.0"]
    assert {a["version"] for a in status["archives"]} == {"3.9.0", "4.0.0"}

    rc, out = host.run("rollback", "--to", "3.9.0")

    assert rc == 0, out
    assert host.installed() == "3.9.0"
    assert host.fingerprint() == before_tree
    after = db_state(host.db_url)
    after.pop("molam_agent_migrations")
    assert after == before_db


def test_rollback_to_unknown_version_fails_cleanly(host):
    rc, out = host.run("rollback", "--to", "2.0.0")
    assert rc == 2
    assert out["rollback_status"] == "failed" and "no kept copy" in out["error"]
    assert host.installed() == "3.9.0"


def test_operator_forced_rollback_runs_before_any_upgrade(mysql_host, small_release):
    host = mysql_host
    before_tree = host.fingerprint()
    _upgrade(host, small_release)
    state = host.cp.state
    state.pending = [
        {
            "rollback_id": "7d2b7c1e-3c1e-4a52-9d0c-6b1d2f0e9a11",
            "merchant_id": MERCHANT,
            "plugin_name": "woocommerce",
            "from_version": "4.0.0",
            "to_version": "3.9.0",
            "trigger": "operator_forced",
            "reason": "Performance degradation reported",
            "created_at": datetime.now(UTC).isoformat(),
        }
    ]

    rc, out = host.run("upgrade")

    assert rc == 0, out
    assert out["rollback_status"] == "success"
    assert out["forced_rollbacks"][0]["trigger"] == "operator_forced"
    assert host.installed() == "3.9.0"
    assert host.fingerprint() == before_tree
    complete = state.rollbacks["7d2b7c1e-3c1e-4a52-9d0c-6b1d2f0e9a11"]
    assert complete["completed"] and complete["success"] is True and complete["db_restored"] is True
    assert not state.posts("rollback/initiate")  # the operator's rollback_id is completed instead

    # The rollout still offers 4.0.0, but the version is on hold after the forced rollback.
    rc, out = host.run("upgrade")
    assert rc == 0 and out["status"] == "skipped" and "hold" in out["reason"]
    assert host.installed() == "3.9.0"


def test_dry_run_changes_nothing(mysql_host, small_release):
    host = mysql_host
    before, before_db = host.fingerprint(), db_state(host.db_url)
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS)
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, out = host.run("upgrade", "--dry-run")

    assert rc == 0, out
    assert out["dry_run"] is True and out["status"] == "skipped"
    assert out["plan"]["migrations_to_run"] == sorted(up_only(GOOD_MIGRATIONS))
    assert out["plan"]["migration_mode"] == "down" and out["plan"]["tables_copied"] == []
    assert host.fingerprint() == before
    assert db_state(host.db_url) == before_db
    assert not host.cp.state.posts("upgrades")


def test_not_selected_is_skipped_with_the_reason_unless_forced(host, small_release):
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0", should=False)
    host.write_config()

    rc, out = host.run("upgrade")
    assert rc == 0 and out["status"] == "skipped"
    assert out["reason"] == "Outside the rollout percentage"
    assert host.installed() == "3.9.0"

    rc, out = host.run("upgrade", "--force")
    assert rc == 0 and out["status"] == "success", out
    assert host.installed() == "4.0.0"


def test_status_reports_the_installation(host):
    rc, out = host.run("status")
    assert rc == 0
    assert out["installed_version"] == "3.9.0"
    assert out["operation"] is None and out["maintenance"] is False


def test_prune_deletes_archives_past_retention(host, small_release):
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0")
    host.write_config()
    assert host.run("upgrade")[0] == 0
    [archive] = (host.state_dir / "backups").glob("*.mab")
    old = archive.with_name(archive.name.replace(archive.name.split("-")[-2], "20200101T000000Z"))
    os.rename(archive, old)
    fresh = (
        host.state_dir
        / "backups"
        / f"woocommerce-3.9.0-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-abc.mab"
    )
    fresh.write_bytes(b"x")

    rc, out = host.run("prune")

    assert rc == 0, out
    assert out["removed_archives"] == [old.name]
    assert not old.exists() and fresh.exists()


def test_backup_key_is_created_with_mode_0600(host, small_release):
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0")
    host.write_config()
    assert host.run("upgrade")[0] == 0
    key = host.tmp / "etc" / "backup.key"
    assert key.stat().st_size == 32
    assert key.stat().st_mode & 0o777 == 0o600


def test_prune_drops_kept_tables_and_previous_versions_past_retention(mysql_host, small_release):
    from molam_agent.config import load_config
    from molam_agent.engine import Agent

    host = mysql_host
    # A snapshot-mode release whose smoke test fails: its rollback merges back and keeps tables.
    zip_path, _ = small_release("4.0.0", migrations=SNAPSHOT_MIGRATIONS, health="broken")
    host.publish(zip_path, "4.0.0")
    host.write_config(database={"allow_snapshot": True})
    rc, out = host.run("upgrade")
    assert rc == 1 and out["rollback_status"] == "success", out
    kept = list(out["kept_tables"])
    assert kept
    zip_path, _ = small_release("4.1.0")
    host.publish(zip_path, "4.1.0")
    assert host.run("upgrade")[0] == 0
    agent = Agent(load_config(str(host.config_path)))

    with agent.locked():
        nothing = agent.prune()
        later = agent.prune(now=time.time() + 31 * 86400)

    assert nothing["dropped_kept_tables"] == [] and nothing["removed_generations"] == []
    assert sorted(later["dropped_kept_tables"]) == sorted(kept)
    assert later["removed_generations"] == ["3.9.0"]
    assert len(later["removed_archives"]) >= 1
    with connect(host.db_url) as db:
        assert not [t for t in db.tables() if "_kept_" in t or t.startswith("molam_snap_")]
    work = host.plugin_dir.parent / ".molam-agent" / "molam-form"
    assert not [p for p in work.iterdir() if p.name.startswith("prev-")]
    assert host.installed() == "4.1.0"


def test_force_finds_the_release_when_the_decision_carries_none(host, small_release):
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0", should=False)
    host.cp.state.decision["release"] = None  # not selected: the answer names no package
    host.write_config()

    rc, out = host.run("upgrade", "--force")

    assert rc == 0 and out["status"] == "success", out
    assert host.installed() == "4.0.0"
    assert any(r["path"] == "releases" for r in host.cp.state.requests)
