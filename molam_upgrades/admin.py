"""Admin for credentials (token shown once; revoke/rotate actions), the audit log (read-only) and alerts."""

from __future__ import annotations

from django.contrib import admin, messages

from . import credentials
from .admin_actions import ReadOnlyAdminMixin, admin_actor, run_action
from .exceptions import DomainError
from .models import Alert, ApiClient, AuditEntry, IdempotencyRecord


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "role",
        "merchant_id",
        "is_active",
        "token_hint",
        "created_at",
        "last_used_at",
    )
    list_filter = ("role", "is_active")
    search_fields = ("name", "merchant_id", "token_hint")
    date_hierarchy = "created_at"
    # is_active changes only through the audited "revoke" action (seen by every process at once).
    readonly_fields = ("is_active", "token_hash", "token_hint", "created_at", "created_by", "last_used_at")
    actions = ["revoke", "rotate"]
    fields = (
        "name",
        "role",
        "merchant_id",
        "is_active",
        "token_hint",
        "token_hash",
        "created_by",
        "created_at",
        "last_used_at",
    )

    def get_readonly_fields(self, request, obj=None):
        # Role and merchant binding are fixed once a token exists: create a new credential instead.
        if obj is not None:
            return (*self.readonly_fields, "name", "role", "merchant_id")
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        try:
            client, token = credentials.create_api_client(
                name=obj.name,
                role=obj.role,
                merchant_id=obj.merchant_id,
                actor=admin_actor(request),
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        obj.pk = client.pk
        obj.__dict__.update(client.__dict__)
        self.message_user(
            request,
            f"Token for {client.name} (shown once, copy it now): {token}",
            messages.WARNING,
        )

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the audit log refers to credentials by name

    @admin.action(description="Revoke the selected credentials (refused everywhere at once)")
    def revoke(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda client, actor: credentials.revoke_api_client(
                client, actor=actor, reason="revoked in admin"
            ),
            "Revoked {count} credential(s).",
        )

    @admin.action(description="Rotate the tokens of the selected credentials (new tokens shown once)")
    def rotate(self, request, queryset):
        def rotate_one(client, actor):
            client, token = credentials.rotate_api_client(client, actor=actor)
            self.message_user(
                request, f"New token for {client.name} (shown once, copy it now): {token}", messages.WARNING
            )

        run_action(
            self, request, queryset, rotate_one, "Rotated {count} token(s); the old ones no longer work."
        )


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "actor", "action", "object_type", "object_id")
    list_filter = ("action", "object_type")
    search_fields = ("actor", "object_id", "action")
    date_hierarchy = "created_at"


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "severity", "status", "attempts", "summary")
    list_filter = ("status", "kind", "severity")
    search_fields = ("summary", "dedup_key")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Alert._meta.fields]
    actions = ["retry_delivery"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry delivery of the selected alerts")
    def retry_delivery(self, request, queryset):
        from .alerts import retry_alerts

        self.message_user(request, f"Queued {retry_alerts(queryset)} alert(s) for delivery.")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "principal", "key", "status_code")
    search_fields = ("principal", "key")
    date_hierarchy = "created_at"
