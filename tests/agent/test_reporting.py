"""Reports go through a durable outbox: an unreachable control plane never blocks a rollback,
and every report reaches it exactly once."""

from __future__ import annotations

from .conftest import BROKEN_MIGRATIONS, db_state
from .controlplane import FakeControlPlane


def test_unreachable_control_plane_skips_safely(host, small_release):
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0")
    host.write_config()
    before = host.fingerprint()
    host.cp.stop()

    rc, out = host.run("upgrade")

    assert rc == 0, out
    assert out["status"] == "skipped"
    assert "unreachable" in out["reason"]
    assert host.fingerprint() == before


def test_rollback_is_not_blocked_and_reports_are_sent_later_exactly_once(mysql_host, small_release):
    host = mysql_host
    before, before_db = host.fingerprint(), db_state(host.db_url)
    zip_path, _ = small_release("4.0.0", migrations=BROKEN_MIGRATIONS)
    host.publish(zip_path, "4.0.0")
    host.write_config()
    state = host.cp.state
    state.fail_writes = 503  # reads work, every report is refused for now

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert out["rollback_status"] == "success"
    assert host.fingerprint() == before
    after = db_state(host.db_url)
    after.pop("molam_agent_migrations")
    assert after == before_db
    queued = list((host.state_dir / "outbox").glob("*.json"))
    assert len(queued) >= 6  # backup, backup patch, upgrade, rollback event, initiate, complete
    assert state.writes == 0

    # The control plane comes back; the next answer to a write is lost on the way back once.
    state.fail_writes = None
    state.lose_answers = 1
    rc, out = host.run("status")
    rc, out = host.run("recover")

    assert not list((host.state_dir / "outbox").glob("*.json"))
    assert len(state.upgrade_logs) == 1 and state.upgrade_logs[0]["status"] == "rolled_back"
    assert len(state.backups) == 1
    [backup] = state.backups.values()
    assert backup["backup_status"] == "completed"
    assert len(state.rollbacks) == 1
    [rollback] = state.rollbacks.values()
    assert rollback["completed"] is True and rollback["trigger"] == "automatic"
    assert rollback["db_restored"] is True
    keys = [r["key"] for r in state.requests if r["method"] != "GET"]
    assert all(keys)
    # Every write carried an idempotency key; replays were answered from the first result.
    assert state.writes == 6


def test_control_plane_restarting_on_the_same_port_receives_queued_reports(host, small_release):
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0")
    host.write_config()
    host.cp.state.fail_writes = 502
    rc, out = host.run("upgrade")
    assert rc == 0 and out["status"] == "success"
    assert host.cp.state.writes == 0

    port, state = host.cp.port, host.cp.state
    host.cp.stop()
    rc, out = host.run("status")
    assert out["outbox_pending"] >= 3

    state.fail_writes = None
    host.cp = FakeControlPlane(state.files_dir, port=port, state=state)
    try:
        rc, out = host.run("upgrade")
        assert out["status"] == "skipped"  # already on 4.0.0
        assert [log["status"] for log in state.upgrade_logs] == ["success"]
        assert not list((host.state_dir / "outbox").glob("*.json"))
    finally:
        host.cp.stop()
