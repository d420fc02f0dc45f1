from __future__ import annotations

from django.contrib import admin

from .models import RollbackHistory, UpgradeLog


@admin.register(UpgradeLog)
class UpgradeLogAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "merchant_id",
        "plugin_name",
        "from_version",
        "to_version",
        "status",
        "rollback_status",
        "duration_ms",
    )
    list_filter = ("status", "rollback_status", "plugin_name")
    search_fields = ("=id", "=merchant_id", "plugin_name", "to_version")
    date_hierarchy = "created_at"
    readonly_fields = ("id", "created_at")


@admin.register(RollbackHistory)
class RollbackHistoryAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "merchant_id",
        "plugin_name",
        "from_version",
        "to_version",
        "rollback_trigger",
        "success",
        "duration_ms",
        "sira_triggered",
    )
    list_filter = ("rollback_trigger", "success", "sira_triggered", "plugin_name")
    search_fields = (
        "=rollback_id",
        "=merchant_id",
        "plugin_name",
        "rollback_reason",
        "error_message",
    )
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        # Completed rows are part of the immutable audit trail (a database trigger agrees).
        if obj is not None and obj.completed_at is not None:
            return [f.name for f in self.model._meta.fields]
        return (
            "rollback_id",
            "created_at",
            "completed_at",
            "sira_triggered",
            "error_rate_detected",
            "rollout",
        )

    def has_delete_permission(self, request, obj=None):
        return False
