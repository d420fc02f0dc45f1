"""Rollouts in admin: the power tool. Actions call the same services as the API."""

from __future__ import annotations

from django.contrib import admin, messages

from molam_upgrades.admin_actions import ReadOnlyAdminMixin, admin_actor, run_action
from molam_upgrades.exceptions import DomainError

from . import services
from .models import AutoCheckRun, Release, Rollout


@admin.register(Rollout)
class RolloutAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "plugin_name",
        "version",
        "rollout_percentage",
        "rollout_strategy",
        "status",
        "auto_paused",
        "sira_monitoring",
        "error_threshold",
        "created_at",
    )
    list_filter = ("status", "rollout_strategy", "auto_paused", "sira_monitoring", "plugin_name")
    search_fields = ("plugin_name", "version", "paused_reason")
    date_hierarchy = "created_at"
    actions = ["pause", "resume", "complete"]

    def get_readonly_fields(self, request, obj=None):
        # Status and percentage change through the audited services (actions, API, dashboard).
        return [f.name for f in self.model._meta.fields] if obj else []

    def has_add_permission(self, request):
        return False  # create rollouts through the API or the rollout-control page

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Pause selected rollouts")
    def pause(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda rollout, actor: services.pause_rollout(
                rollout.pk, actor=actor, reason="Paused from admin"
            ),
            "Paused {count} rollout(s).",
        )

    @admin.action(description="Resume selected rollouts")
    def resume(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda rollout, actor: services.resume_rollout(rollout.pk, actor=actor),
            "Resumed {count} rollout(s).",
        )

    @admin.action(description="Complete selected rollouts")
    def complete(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda rollout, actor: services.complete_rollout(rollout.pk, actor=actor),
            "Completed {count} rollout(s).",
        )


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ("plugin_name", "version", "sha256", "created_at", "created_by")
    list_filter = ("plugin_name",)
    search_fields = ("plugin_name", "version", "sha256")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] if obj else ["created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            release = services.register_release(
                actor=admin_actor(request),
                plugin_name=obj.plugin_name,
                version=obj.version,
                download_url=obj.download_url,
                sha256=obj.sha256,
                signature=obj.signature,
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        obj.pk = release.pk


@admin.register(AutoCheckRun)
class AutoCheckRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("started_at", "source", "actor", "checked_count", "paused_count", "finished_at")
    list_filter = ("source",)
    date_hierarchy = "started_at"
