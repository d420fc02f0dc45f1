"""Backup records: creation, status updates and retention."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from molam_upgrades.exceptions import InvalidTransition
from molam_upgrades.models import AuditEntry

from .choices import FINAL_STATES, BackupStatus
from .models import PluginBackup

logger = logging.getLogger("molam.backups")


def create_backup(**fields) -> PluginBackup:
    """Record a backup the agent took (default status ``pending``, expires after retention)."""
    fields.setdefault("backup_status", BackupStatus.PENDING)
    return PluginBackup.objects.create(**fields)


def update_backup(backup: PluginBackup, *, actor: str | None = None, **changes) -> PluginBackup:
    """Update status/size/sha256. Failed and expired backups are final (409).

    A change made by a person (``actor``: the admin) is written to the audit log; the agent's
    own progress reports are not (they are the backup's normal life).
    """
    with transaction.atomic():
        locked = PluginBackup.objects.select_for_update().get(pk=backup.pk)
        new_status = changes.get("backup_status")
        if locked.backup_status in FINAL_STATES and changes:
            raise InvalidTransition(f"A {locked.backup_status} backup cannot be changed.")
        if new_status == BackupStatus.PENDING and locked.backup_status != BackupStatus.PENDING:
            raise InvalidTransition(f"A {locked.backup_status} backup cannot go back to pending.")
        before = {field: _jsonable(getattr(locked, field)) for field in changes}
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.save()
        if actor:
            AuditEntry.record(
                actor=actor,
                action="backup.updated",
                obj=locked,
                before=before,
                after={field: _jsonable(value) for field, value in changes.items()},
            )
    return locked


def _jsonable(value):
    return value if value is None or isinstance(value, (str, int, bool)) else str(value)


def expire_backups(now=None) -> int:
    """Mark backups past ``expires_at`` as expired. One UPDATE: idempotent, safe concurrently."""
    now = now or timezone.now()
    count = (
        PluginBackup.objects.filter(expires_at__lte=now)
        .exclude(backup_status=BackupStatus.EXPIRED)
        .update(backup_status=BackupStatus.EXPIRED, updated_at=now)
    )
    if count:
        logger.info("expired %d backups", count, extra={"event": "backups_expired", "count": count})
    return count
