"""Kill the agent with SIGKILL at every step boundary and inside the swaps, run it again:
the plugin directory and its tables are byte-for-byte the old version or the new one, never
a mix.

The kill points are the product's documented fault-injection hook ``MOLAM_AGENT_FAULT``.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from molam_agent.db import connect
from molam_agent.fsutil import tree_fingerprint
from molam_agent.maintenance import flag_path, is_active
from molam_agent.release import extract_zip

from .conftest import GOOD_MIGRATIONS, create_database, db_state, up_only

UPGRADE_POINTS = [
    "prepared",
    "backup:db-written",
    "backed_up",
    "download:chunk",
    "downloaded",
    "extract:done",
    "staged",
    "maintenance_on",
    "snapshot_started",
    "snapshot_done",
    "swap_started",
    "swap:exchanged",
    "swapped",
    "migrations_started",
    "migrations:applied",
    "migrations_done",
    "verified",
    "committed",
]
# Reached only when the upgrade fails (the release's smoke test fails) and is rolled back.
ROLLBACK_POINTS = [
    "rollback_started",
    "restore:swapped",
    "files_restored",
    "restore:tables-renamed",
    "db_restored",
    "rolled_back",
]


def _expected_new(host, zip_path: Path, engine: str) -> tuple[str, dict[str, str]]:
    """What 'fully new' means: the package as extracted, the seed with the migrations run."""
    tree = host.tmp / "expected-new"
    extract_zip(zip_path, tree, 1 << 30)
    url, cleanup = create_database(engine, host.tmp, rows=2000)
    try:
        with connect(url) as db:
            db.ensure_migrations_table()
            db.apply_migrations(
                "woocommerce", "4.0.0", [(n, "x", sql) for n, sql in sorted(up_only(GOOD_MIGRATIONS).items())]
            )
        return tree_fingerprint(tree), _comparable(db_state(url))
    finally:
        cleanup()


def _comparable(state: dict[str, str]) -> dict[str, str]:
    # The agent's bookkeeping table carries timestamps; its content is checked separately.
    return {k: v for k, v in state.items() if k != "molam_agent_migrations"}


def _check_old_or_new(host, old: tuple[str, dict], new: tuple[str, dict]) -> str:
    tree = host.fingerprint()
    tables = _comparable(db_state(host.db_url))
    if tree == old[0]:
        assert tables == old[1], "files are old but tables are not"
        with connect(host.db_url) as db:
            if "molam_agent_migrations" in db.tables():
                assert db.row_count("molam_agent_migrations") == 0
        return "old"
    assert tree == new[0], "plugin directory is neither the old nor the new version"
    assert tables == new[1], "files are new but tables are not"
    return "new"


def _crash_and_recover(
    host, point: str, zip_path: Path, engine: str, env: dict[str, str] | None = None
) -> str:
    old = (host.fingerprint(), _comparable(db_state(host.db_url)))
    new = _expected_new(host, zip_path, engine)
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, out = host.run("upgrade", env={"MOLAM_AGENT_FAULT": point, **(env or {})})
    assert rc == -signal.SIGKILL, (point, out)

    rc, out = host.run("recover", env=env)
    assert rc in (0, 1), out
    assert not (host.state_dir / "journal.json").exists()
    assert not flag_path(host.plugin_dir).exists()
    # Every report reached the control plane, none is stuck or refused, no backup left pending.
    assert not list((host.state_dir / "outbox").glob("*.json"))
    assert not list((host.state_dir / "outbox" / "dead").glob("*.json"))
    assert all(b["backup_status"] in ("completed", "failed") for b in host.cp.state.backups.values())
    return _check_old_or_new(host, old, new)


@pytest.mark.parametrize("point", UPGRADE_POINTS)
def test_kill_during_upgrade_leaves_old_or_new(mysql_host, small_release, point):
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS)

    outcome = _crash_and_recover(mysql_host, point, zip_path, "mysql")

    assert outcome == ("new" if point == "committed" else "old")
    if outcome == "old":
        # A crash is not the release's fault: the next run upgrades normally.
        rc, out = mysql_host.run("upgrade")
        assert rc == 0 and out["status"] == "success", out
        assert mysql_host.installed() == "4.0.0"


@pytest.mark.parametrize("point", ROLLBACK_POINTS)
def test_kill_during_rollback_leaves_old(mysql_host, small_release, point):
    # The release migrates fine but its smoke test fails: the rollback path runs.
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS, health="broken")

    outcome = _crash_and_recover(mysql_host, point, zip_path, "mysql")

    assert outcome == "old"


@pytest.mark.parametrize("point", ["swap:between-renames", "restore:between-renames"])
def test_kill_between_fallback_renames(mysql_host, small_release, point):
    """Without renameat2 the swap is two renames; the live name may briefly be missing."""
    health = "broken" if point.startswith("restore") else "ok"
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS, health=health)

    outcome = _crash_and_recover(mysql_host, point, zip_path, "mysql", env={"MOLAM_AGENT_NO_RENAMEAT2": "1"})

    assert outcome == "old"


def test_kill_during_recovery_then_recover_again(mysql_host, small_release):
    host = mysql_host
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS)
    old = (host.fingerprint(), _comparable(db_state(host.db_url)))
    new = _expected_new(host, zip_path, "mysql")
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, _ = host.run("upgrade", env={"MOLAM_AGENT_FAULT": "migrations_done"})
    assert rc == -signal.SIGKILL
    rc, _ = host.run("recover", env={"MOLAM_AGENT_FAULT": "restore:tables-renamed"})
    assert rc == -signal.SIGKILL
    rc, out = host.run("recover")

    assert rc == 0 or out["rollback_status"] == "success", out
    assert _check_old_or_new(host, old, new) == "old"
    [complete] = host.cp.state.posts("/complete")
    assert complete["success"] is True


@pytest.mark.parametrize(
    ("engine", "point"),
    [
        ("postgresql", "snapshot_started"),
        ("postgresql", "swap_started"),
        ("postgresql", "migrations:applied"),
        ("postgresql", "migrations_done"),
        ("postgresql", "restore:tables-renamed"),
        ("sqlite", "snapshot_done"),
        ("sqlite", "migrations_done"),
        ("sqlite", "restore:tables-renamed"),
    ],
)
def test_kill_on_postgresql_and_sqlite(tmp_path, control_plane, small_release, engine, point):
    from .conftest import _host, build_plugin

    url, cleanup = create_database(engine, tmp_path, rows=2000)
    try:
        host = _host(tmp_path, control_plane, url)
        build_plugin(host.plugin_dir, "3.9.0")
        health = "broken" if point.startswith("restore") else "ok"
        zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS, health=health)
        assert _crash_and_recover(host, point, zip_path, engine) == "old"
    finally:
        cleanup()


def test_maintenance_flag_expires_when_the_agent_dies(mysql_host, small_release):
    host = mysql_host
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS)
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, _ = host.run("upgrade", env={"MOLAM_AGENT_FAULT": "verified"})

    assert rc == -signal.SIGKILL
    assert is_active(host.plugin_dir)  # checkout paused right after the crash...
    assert not is_active(host.plugin_dir, now=time.time() + 61)  # ...and resumes by itself


def test_maintenance_flag_does_not_expire_while_files_and_schema_differ(mysql_host, small_release):
    host = mysql_host
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS)
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, _ = host.run("upgrade", env={"MOLAM_AGENT_FAULT": "swapped"})

    assert rc == -signal.SIGKILL
    # New files, old schema: checkout must not reopen by itself...
    assert is_active(host.plugin_dir, now=time.time() + 30 * 86400)
    rc, out = host.run("recover")
    # ...only the recovery takes the flag down, with the old version back.
    assert rc == 1 and out["rollback_status"] == "success", out
    assert not flag_path(host.plugin_dir).exists()


def test_failed_rollback_is_retried_by_the_next_run(mysql_host, small_release):
    host = mysql_host
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS, health="broken")
    old = (host.fingerprint(), _comparable(db_state(host.db_url)))
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, out = host.run("upgrade", env={"MOLAM_AGENT_FAULT": "enospc:restore:tables-renamed"})

    assert rc == 2, out
    assert out["rollback_status"] == "failed" and "No space left" in out["error"]
    assert (host.state_dir / "journal.json").exists()  # kept for the next run to retry
    # A failed rollback keeps checkout paused: the flag does not expire...
    assert is_active(host.plugin_dir, now=time.time() + 30 * 86400)
    # ...and the control plane hears of it (it raises the critical alert on success=false).
    [failed] = [r for r in host.cp.state.rollbacks.values() if r.get("success") is False]
    assert "No space left" in failed["error_message"]

    rc, out = host.run("recover")

    assert rc == 1, out
    assert out["rollback_status"] == "success"
    assert not (host.state_dir / "journal.json").exists()
    assert _check_old_or_new(host, old, (None, None)) == "old"
    state = host.cp.state
    assert [log["status"] for log in state.upgrade_logs] == ["failed"]  # the upgrade, counted once
    outcomes = sorted(r["success"] for r in state.rollbacks.values())
    assert outcomes == [False, True]  # the failed attempt and the retry, each on record
