"""Rollouts in admin: the power tool. Actions call the same services as the API."""

from __future__ import annotations

from django.contrib import admin, messages
from rest_framework.exceptions import APIException

from molam_upgrades.auth import user_roles
from molam_upgrades.choices import OPERATORS

from . import services
from .models import AutoCheckRun, Release, Rollout


def _run(modeladmin, request, queryset, action, verb):
    actor = f"user:{request.user.get_username()}"
    if not (user_roles(request.user) & OPERATORS):
        modeladmin.message_user(
            request, "Only ops_plugins and pay_admin may change rollouts.", messages.ERROR
        )
        return
    done = 0
    for rollout in queryset:
        try:
            action(rollout.pk, actor=actor)
            done += 1
        except APIException as exc:
            modeladmin.message_user(request, f"Rollout {rollout.pk}: {exc.detail}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{verb} {done} rollout(s).")


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
        _run(
            self,
            request,
            queryset,
            lambda pk, actor: services.pause_rollout(pk, actor=actor, reason="Paused from admin"),
            "Paused",
        )

    @admin.action(description="Resume selected rollouts")
    def resume(self, request, queryset):
        _run(self, request, queryset, services.resume_rollout, "Resumed")

    @admin.action(description="Complete selected rollouts")
    def complete(self, request, queryset):
        _run(self, request, queryset, services.complete_rollout, "Completed")


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
                actor=f"user:{request.user.get_username()}",
                plugin_name=obj.plugin_name,
                version=obj.version,
                download_url=obj.download_url,
                sha256=obj.sha256,
                signature=obj.signature,
            )
        except APIException as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
            return
        obj.pk = release.pk


@admin.register(AutoCheckRun)
class AutoCheckRunAdmin(admin.ModelAdmin):
    list_display = ("started_at", "source", "actor", "checked_count", "paused_count", "finished_at")
    list_filter = ("source",)
    date_hierarchy = "started_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
