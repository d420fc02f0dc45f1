"""Payment reports and canary verdicts in admin: read-only (they are measurements)."""

from __future__ import annotations

from django.contrib import admin

from molam_upgrades.admin_actions import ReadOnlyAdminMixin

from .models import CanaryAnalysis, PaymentHealthReport


@admin.register(PaymentHealthReport)
class PaymentHealthReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "hour",
        "merchant_id",
        "plugin_name",
        "installed_version",
        "attempted",
        "succeeded",
        "failed",
    )
    list_filter = ("plugin_name",)
    search_fields = ("=merchant_id", "installed_version")
    date_hierarchy = "hour"


@admin.register(CanaryAnalysis)
class CanaryAnalysisAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("rollout_id", "verdict", "success_verdict", "latency_verdict", "computed_at")
    list_filter = ("verdict",)
