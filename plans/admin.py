"""Plans in admin: read-only. Plans change through the services (API, rollout detail page),
which validate the stages and write the audit log; admin edits would bypass both."""

from __future__ import annotations

from django.contrib import admin

from .models import PlanStage, PlanTemplate, RolloutPlan


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PlanTemplate)
class PlanTemplateAdmin(ReadOnlyAdmin):
    list_display = ("name", "slug", "created_by", "created_at")
    search_fields = ("name", "slug")


class PlanStageInline(admin.TabularInline):
    model = PlanStage
    extra = 0
    can_delete = False
    fields = (
        "position",
        "percentage",
        "min_soak_minutes",
        "min_merchants",
        "max_error_rate",
        "gate",
        "entered_at",
        "left_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RolloutPlan)
class RolloutPlanAdmin(ReadOnlyAdmin):
    list_display = ("rollout", "template_name", "current_stage", "held", "finished_at", "time_zone")
    list_filter = ("held", "template_name")
    inlines = [PlanStageInline]
