from __future__ import annotations

from django.contrib import admin

from .models import PluginBackup


@admin.register(PluginBackup)
class PluginBackupAdmin(admin.ModelAdmin):
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
    readonly_fields = ("backup_id", "created_at", "updated_at")
