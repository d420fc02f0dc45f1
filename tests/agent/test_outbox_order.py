"""The outbox sends in a stored sequence, dependencies first; the clock cannot jam it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from molam_agent.api import ControlPlane
from molam_agent.outbox import Outbox

from .controlplane import FakeControlPlane


@pytest.fixture
def cp(tmp_path):
    server = FakeControlPlane(tmp_path)
    yield server
    server.stop()


def _client(cp) -> ControlPlane:
    return ControlPlane(cp.api_url, "plugin-token", 5)


def _sent_paths(cp) -> list[str]:
    return [r["path"] for r in cp.state.requests if r["method"] != "GET"]


def test_a_clock_stepped_back_does_not_reorder_or_jam_the_queue(tmp_path, cp):
    box = Outbox(tmp_path / "state", attempts=1)
    with time_machine.travel(datetime(2026, 11, 29, 9, 0, tzinfo=UTC), tick=False):
        init = box.enqueue("POST", "rollback/initiate", {"trigger": "manual"}, key="tx-initiate")
    # NTP steps the clock back an hour between the two reports.
    with time_machine.travel(datetime(2026, 11, 29, 8, 0, tzinfo=UTC), tick=False):
        box.enqueue(
            "POST", "rollback/{rollback_id}/complete", {"success": True}, depends_on=init, key="tx-done"
        )
        box.enqueue("POST", "upgrades", {"status": "failed"}, key="tx-upgrade")

    assert [e["key"] for e in box.pending()] == ["tx-initiate", "tx-done", "tx-upgrade"]
    assert [e["seq"] for e in box.pending()] == [1, 2, 3]

    stats = box.flush(_client(cp))

    assert stats == {"sent": 3, "dead": 0, "pending": 0}
    rid = box.result("tx-initiate")["rollback_id"]
    assert _sent_paths(cp) == ["rollback/initiate", f"rollback/{rid}/complete", "upgrades"]


def test_a_dependency_is_sent_first_whatever_its_number(tmp_path, cp):
    # Queues written by earlier agents are named after time_ns(): after a clock step the
    # dependent report can carry the smaller number. It must still drain, dependency first.
    box = Outbox(tmp_path / "state", attempts=1)
    legacy = {
        "1764403200000000000-tx-done.json": {
            "key": "tx-done",
            "method": "POST",
            "path": "rollback/{rollback_id}/complete",
            "body": {"success": True},
            "depends_on": "tx-initiate",
            "attempts": 0,
        },
        "1764406800000000000-tx-initiate.json": {
            "key": "tx-initiate",
            "method": "POST",
            "path": "rollback/initiate",
            "body": {"trigger": "manual"},
            "depends_on": None,
            "attempts": 0,
        },
    }
    for name, entry in legacy.items():
        (box.dir / name).write_text(json.dumps(entry))

    assert [e["key"] for e in box.pending()] == ["tx-initiate", "tx-done"]
    new = box.enqueue("POST", "upgrades", {"status": "failed"})
    [entry] = [e for e in box.pending() if e["key"] == new]
    assert entry["seq"] == 1764406800000000001  # after every number already handed out

    stats = box.flush(_client(cp))

    assert stats == {"sent": 3, "dead": 0, "pending": 0}
    assert _sent_paths(cp)[0] == "rollback/initiate"
    assert _sent_paths(cp)[2] == "upgrades"


def test_the_sequence_survives_a_lost_counter_and_never_goes_back(tmp_path):
    box = Outbox(tmp_path / "state")
    keys = [box.enqueue("POST", "upgrades", {"n": i}) for i in range(3)]
    (box.dir / "seq").unlink()
    keys.append(box.enqueue("POST", "upgrades", {"n": 3}))
    seqs = [e["seq"] for e in box.pending()]
    assert seqs == [1, 2, 3, 4]
    assert [e["key"] for e in box.pending()] == keys

    # The queue drains to empty; the counter still never reuses a number.
    for entry in box.pending():
        box._remove(entry)
    with time_machine.travel(datetime.now(UTC) - timedelta(days=365), tick=False):
        box.enqueue("POST", "upgrades", {"n": 4})
    assert [e["seq"] for e in box.pending()] == [5]


def test_a_report_is_not_sent_before_its_dependency_even_when_the_server_fails(tmp_path, cp):
    box = Outbox(tmp_path / "state", attempts=1)
    init = box.enqueue("POST", "rollback/initiate", {"trigger": "manual"})
    box.enqueue("POST", "rollback/{rollback_id}/complete", {"success": True}, depends_on=init)
    cp.state.fail_status = 503

    assert box.flush(_client(cp)) == {"sent": 0, "dead": 0, "pending": 2}
    assert _sent_paths(cp) == ["rollback/initiate"]  # stopped at the first failure, order kept

    cp.state.fail_status = None
    assert box.flush(_client(cp)) == {"sent": 2, "dead": 0, "pending": 0}
