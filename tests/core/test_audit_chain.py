from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from molam_upgrades.models import AuditEntry

pytestmark = pytest.mark.django_db


def _entries(n=5):
    return [
        AuditEntry.record(
            actor=f"user:u{i}",
            action="rollout.created",
            object_type="rollout",
            object_id=str(i),
            after={"i": i},
        )
        for i in range(n)
    ]


def test_entries_are_chained():
    entries = _entries(3)
    assert entries[0].prev_hash == "0" * 64
    assert entries[1].prev_hash == entries[0].entry_hash and entries[2].prev_hash == entries[1].entry_hash
    out = io.StringIO()
    call_command("verify_audit_log", stdout=out)
    assert "3 entries verified" in out.getvalue()


@pytest.mark.usefixtures("uses_postgres")
def test_tampering_is_reported_at_the_first_broken_link():
    entries = _entries(5)
    with connection.cursor() as cursor:
        # What someone with table-owner rights could do: disable the guard and edit history.
        cursor.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        cursor.execute("UPDATE audit_log SET actor = 'user:mallory' WHERE id = %s", [entries[2].pk])
        cursor.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    assert AuditEntry.verify_chain() == (2, entries[2].pk)
    with pytest.raises(CommandError, match=f"broken at entry {entries[2].pk}"):
        call_command("verify_audit_log")


@pytest.mark.usefixtures("uses_postgres")
def test_a_removed_entry_is_reported():
    entries = _entries(4)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        cursor.execute("DELETE FROM audit_log WHERE id = %s", [entries[1].pk])
        cursor.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    assert AuditEntry.verify_chain()[1] == entries[2].pk


@pytest.mark.usefixtures("uses_postgres")
def test_python_and_the_postgresql_trigger_hash_entries_the_same_way():
    # Awkward content on purpose: key order, escapes, non-ASCII, exponents, nesting, nulls.
    contents = [
        ({"status": "active", "paused_reason": None}, {"status": "paused", "paused_reason": "Sira: 6 %"}),
        (None, {"b": 1, "aa": [1, 2.5, None, True], "a": 'quote " back \\ nl \n tab \t é € 😀'}),
        ({"n": 1e-05, "big": 12345678901234567890, "z": {"y": [], "x": {}}}, None),
    ]
    for before, after in contents:
        entry = AuditEntry.record(
            actor="user:ops",
            action="rollout.paused",
            object_type="rollout",
            object_id="7",
            before=before,
            after=after,
        )
        stored = AuditEntry.objects.get(pk=entry.pk)
        assert stored.compute_hash() == stored.entry_hash  # the trigger wrote it; Python agrees
