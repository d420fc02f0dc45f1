"""Seed cases 1 and 2 end to end, on MariaDB, PostgreSQL and SQLite."""

from __future__ import annotations

from molam_agent.db import connect

from .conftest import BROKEN_MIGRATIONS, GOOD_MIGRATIONS, db_state, up_only

RESULT_KEYS = (
    "status",
    "from_version",
    "to_version",
    "rollback_status",
    "reason",
    "error",
    "files_restored",
    "db_restored",
    "duration_ms",
    "rollback_duration_ms",
)


def test_successful_upgrade_needs_no_rollback(db_host, small_release):
    zip_path, _sha = small_release("4.0.0", migrations=GOOD_MIGRATIONS)
    db_host.publish(zip_path, "4.0.0")

    rc, out = db_host.run("upgrade")

    assert rc == 0, out
    assert set(RESULT_KEYS) <= set(out)
    assert out["status"] == "success"
    assert out["rollback_status"] == "not_required"
    assert (out["from_version"], out["to_version"]) == ("3.9.0", "4.0.0")
    assert db_host.installed() == "4.0.0"
    with connect(db_host.db_url) as db:
        assert "fee_amount" in db.columns("wp_molam_orders")
        assert "wp_molam_refunds" in db.tables()
        applied = db.query("SELECT file_name, sha256 FROM molam_agent_migrations ORDER BY file_name")
        assert [r[0] for r in applied] == sorted(up_only(GOOD_MIGRATIONS))
        assert all(len(r[1]) == 64 for r in applied)
    state = db_host.cp.state
    [log] = state.posts("upgrades")
    assert log["status"] == "success" and log["merchant_id"]
    [backup] = state.backups.values()
    assert backup["backup_status"] == "completed" and backup["version"] == "3.9.0"
    assert len(backup["sha256"]) == 64 and backup["backup_size_bytes"] > 0
    assert not state.posts("rollback/initiate")


def test_failed_migration_rolls_back_files_and_tables(db_host, small_release):
    before_tree = db_host.fingerprint()
    before_db = db_state(db_host.db_url)
    zip_path, _sha = small_release("4.0.0", migrations=BROKEN_MIGRATIONS)
    db_host.publish(zip_path, "4.0.0")

    rc, out = db_host.run("upgrade")

    assert rc == 1, {k: out.get(k) for k in ("error", "reason", "_stderr")}
    assert out["status"] == "failed"
    assert out["rollback_status"] == "success"
    assert "003_broken.sql" in out["error"]
    assert out["files_restored"] > 0
    assert out["db_restored"] is True
    assert out["rollback_duration_ms"] is not None
    assert db_host.fingerprint() == before_tree
    after_db = db_state(db_host.db_url)
    after_db.pop("molam_agent_migrations")  # the agent's own bookkeeping table stays
    assert after_db == before_db
    with connect(db_host.db_url) as db:
        assert "wp_molam_refunds" not in db.tables()  # created by the new version: dropped
        assert db.row_count("molam_agent_migrations") == 0  # no migration counts as applied
    state = db_host.cp.state
    [log] = state.posts("upgrades")
    assert log["status"] == "rolled_back"
    [initiate] = state.posts("rollback/initiate")
    assert initiate["trigger"] == "automatic"
    assert (initiate["from_version"], initiate["to_version"]) == ("4.0.0", "3.9.0")
    [complete] = state.posts("/complete")
    assert complete["success"] is True and complete["db_restored"] is True
    assert complete["files_restored"] == out["files_restored"]
    assert isinstance(complete["duration_ms"], int)
    [event] = state.posts("rollback")
    assert event["rollback_version"] == "3.9.0" and event["status"] == "success"
