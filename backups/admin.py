"""Backups in admin: read-only; a status change goes through the service (audited)."""

from __future__ import annotations

from django.contrib import admin

from molam_upgrades.admin_actions import ReadOnlyAdminMixin, run_action

from . import services
from .choices import BackupStatus
from .models import PluginBackup


@admin.register(PluginBackup)
class PluginBackupAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "backup_id",
        "merchant_id",
        "plugin_name",
        "version",
        "backup_status",
        "backup_size_bytes",
        "created_at",
        "expires_at",
    )
    list_filter = ("backup_status", "plugin_name")
    search_fields = ("=backup_id", "=merchant_id", "plugin_name", "version", "backup_path")
    date_hierarchy = "created_at"
    actions = ["mark_failed"]

    @admin.action(description="Mark the selected backups as failed (unusable for a restore)")
    def mark_failed(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda backup, actor: services.update_backup(
                backup, actor=actor, backup_status=BackupStatus.FAILED
            ),
            "Marked {count} backup(s) as failed.",
        )
