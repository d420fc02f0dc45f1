"""Backups the agent takes before an upgrade (files + database snapshot)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from .choices import BackupStatus


def default_expiry():
    return timezone.now() + timedelta(days=settings.BACKUP_RETENTION_DAYS)


class PluginBackup(models.Model):
    """One backup of a merchant's plugin at a version; kept 30 days, then marked expired."""

    backup_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    merchant_id = models.UUIDField()
    plugin_name = models.TextField()
    version = models.TextField()
    backup_path = models.TextField()
    db_snapshot_name = models.TextField(null=True, blank=True)
    backup_size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, null=True, blank=True)
    backup_status = models.TextField(choices=BackupStatus.choices, default=BackupStatus.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(default=default_expiry)

    class Meta:
        db_table = "plugin_backups"
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["merchant_id", "plugin_name", "version", "-created_at"],
                name="backup_lookup_idx",
            ),
            models.Index(fields=["backup_status", "expires_at"], name="backup_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.plugin_name} {self.version} for {self.merchant_id} ({self.backup_status})"
