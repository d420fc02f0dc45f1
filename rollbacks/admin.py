"""Upgrade reports and rollback history in admin: read-only; changes through audited actions."""

from __future__ import annotations

from django.contrib import admin

from molam_upgrades.admin_actions import ReadOnlyAdminMixin, run_action

from . import services
from .models import (
    RollbackDaily,
    RollbackHistory,
    RollbackTotals,
    RolloutMerchantOutcome,
    RolloutReportCounts,
    UpgradeLog,
)


@admin.register(UpgradeLog)
class UpgradeLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Reports are what merchants' plugins said happened; rollout error rates are computed from them."""

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


@admin.register(RollbackHistory)
class RollbackHistoryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The rollback history is an audit trail (a database trigger refuses edits of completed rows)."""

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
    actions = ["close_as_failed"]

    @admin.action(description="Close the selected in-progress rollbacks as failed (the agent never reported)")
    def close_as_failed(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda rollback, actor: services.close_rollback(rollback, actor=actor),
            "Closed {count} rollback(s) as failed.",
        )


# --- Aggregates maintained on write: shown, never edited (``manage.py rebuild_aggregates``) ---


@admin.register(RolloutReportCounts)
class RolloutReportCountsAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("rollout_id", "stripe", "merchants", "merchants_failed", "merchants_upgraded", "reports")
    list_filter = ("rollout_id",)


@admin.register(RolloutMerchantOutcome)
class RolloutMerchantOutcomeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("rollout_id", "merchant_id", "status", "reported_at", "reports")
    search_fields = ("=merchant_id", "=rollout_id")


@admin.register(RollbackTotals)
class RollbackTotalsAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("plugin_name", "rollback_trigger", "initiated", "completed", "succeeded", "failed")
    search_fields = ("plugin_name",)


@admin.register(RollbackDaily)
class RollbackDailyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("day", "plugin_name", "completed", "succeeded", "failed")
    date_hierarchy = "day"
