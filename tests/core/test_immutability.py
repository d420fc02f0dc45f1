"""The PostgreSQL triggers keep the audit trail immutable, even for raw SQL."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import IntegrityError

from molam_upgrades.models import AuditEntry
from tests.factories import PendingRollbackFactory, RollbackFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uses_postgres")]


def _raw(sql: str, params) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_completed_rollback_cannot_be_updated_with_raw_sql():
    rollback = RollbackFactory(success=False)
    with pytest.raises(IntegrityError, match="immutable"):
        _raw(
            "UPDATE plugin_rollback_history SET success = TRUE WHERE rollback_id = %s",
            [rollback.pk],
        )
    rollback.refresh_from_db()
    assert rollback.success is False


def test_in_progress_rollback_can_still_be_completed():
    rollback = PendingRollbackFactory()
    _raw(
        "UPDATE plugin_rollback_history SET success = TRUE, completed_at = now() WHERE rollback_id = %s",
        [rollback.pk],
    )
    rollback.refresh_from_db()
    assert rollback.success is True


@pytest.mark.parametrize("factory", [RollbackFactory, PendingRollbackFactory])
def test_no_rollback_row_can_be_deleted(factory):
    rollback = factory()
    with pytest.raises(IntegrityError, match="DELETE refused"):
        _raw("DELETE FROM plugin_rollback_history WHERE rollback_id = %s", [rollback.pk])
    assert type(rollback).objects.filter(pk=rollback.pk).exists()


def test_audit_entries_cannot_be_updated_or_deleted():
    entry = AuditEntry.record(
        actor="user:alice", action="rollout.created", object_type="rollout", object_id="1"
    )
    with pytest.raises(IntegrityError, match="append-only"):
        _raw("UPDATE audit_log SET actor = 'mallory' WHERE id = %s", [entry.pk])
    with pytest.raises(IntegrityError, match="append-only"):
        _raw("DELETE FROM audit_log WHERE id = %s", [entry.pk])
    entry.refresh_from_db()
    assert entry.actor == "user:alice"
