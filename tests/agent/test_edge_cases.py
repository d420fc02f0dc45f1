"""Edges: the plugin's database down, a symlinked plugin dir, a second run while one works."""

from __future__ import annotations

import fcntl
import os

from .conftest import GOOD_MIGRATIONS


def test_database_down_stops_before_any_change(host, small_release):
    host.db_url = "mysql://root@127.0.0.1:1/wordpress"  # nothing listens on port 1
    before = host.fingerprint()
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS)
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert out["rollback_status"] == "not_required"
    assert host.fingerprint() == before
    assert not (host.state_dir / "journal.json").exists()
    [backup] = host.cp.state.backups.values()
    assert backup["backup_status"] == "failed"


def test_symlinked_plugin_dir_is_upgraded_where_it_lives(host, small_release):
    real = host.plugin_dir
    link = real.parent / "molam-form-link"
    os.symlink(real.name, link)
    host.plugin_dir = link
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, out = host.run("upgrade")

    assert rc == 0, out
    assert link.is_symlink() and os.readlink(link) == real.name
    assert host.installed() == "4.0.0"


def test_a_second_run_while_one_holds_the_lock_is_skipped(host):
    host.write_config()
    host.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(host.state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        rc, out = host.run("upgrade")
        assert rc == 0 and out["status"] == "skipped" and "in progress" in out["reason"]
        rc, out = host.run("status")
        assert rc == 0 and out["installed_version"] == "3.9.0"
    finally:
        os.close(fd)
