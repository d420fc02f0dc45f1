"""A full disk stops the upgrade before the live plugin changes, or rolls it back.

Where the test can mount a small tmpfs (root in a Linux sandbox), the plugins directory
lives on it and the disk really fills up. ``MOLAM_AGENT_FAULT=enospc:<point>`` raises the
same ``OSError(ENOSPC)`` at a chosen point of the flow.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import GOOD_MIGRATIONS, Host, build_plugin, db_state


@pytest.fixture
def tiny_disk_host(tmp_path, control_plane):
    plugins = tmp_path / "wp-content" / "plugins"
    plugins.mkdir(parents=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(plugins)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.fail(
            f"cannot mount a tmpfs here ({proc.stderr.strip()}): this test needs root (CI runs as root)"
        )
    try:
        host = _make(tmp_path, control_plane)
        build_plugin(host.plugin_dir, "3.9.0", files=40, total_bytes=600_000)
        yield host
    finally:
        subprocess.run(["umount", "-l", str(plugins)], check=False)


def _make(tmp_path, control_plane) -> Host:
    # The plugins directory already exists (it is the mount point).
    return Host(
        tmp=tmp_path,
        cp=control_plane,
        plugin_dir=tmp_path / "wp-content" / "plugins" / "molam-form",
        state_dir=tmp_path / "state",
        releases_dir=control_plane.state.files_dir,
    )


def test_real_full_disk_while_staging_leaves_the_plugin_untouched(tiny_disk_host, small_release):
    host = tiny_disk_host
    before = host.fingerprint()
    zip_path, _ = small_release("4.0.0", extra={"assets/vendor.bin": os.urandom(1_800_000)})
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert out["rollback_status"] == "not_required"
    assert "No space left" in out["error"]
    assert host.fingerprint() == before
    work = host.plugin_dir.parent / ".molam-agent" / "molam-form"
    assert not [p for p in work.iterdir() if p.name.startswith("staging-")]
    [log] = host.cp.state.posts("upgrades")
    assert log["status"] == "failed"


@pytest.mark.parametrize(
    "point", ["backup:db-written", "downloaded", "snapshot_done", "swapped", "migrations_done"]
)
def test_enospc_injection_is_handled(mysql_host, small_release, point):
    host = mysql_host
    before, before_db = host.fingerprint(), db_state(host.db_url)
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS)
    host.publish(zip_path, "4.0.0")
    host.write_config()

    rc, out = host.run("upgrade", env={"MOLAM_AGENT_FAULT": f"enospc:{point}"})

    assert rc == 1, out
    assert "No space left" in out["error"]
    assert out["rollback_status"] in ("not_required", "success")
    assert host.fingerprint() == before
    after = db_state(host.db_url)
    after.pop("molam_agent_migrations", None)
    assert after == before_db
    assert not (host.state_dir / "journal.json").exists()
    assert not list((host.state_dir / "backups").glob(".*part"))
