"""Merchants in admin: read-only here (changes go through the API, audited); notices and their log."""

from __future__ import annotations

from django.contrib import admin

from molam_upgrades.admin_actions import ReadOnlyAdminMixin, run_action

from . import services
from .models import Merchant, MerchantNotice, NoticeDelivery


@admin.register(Merchant)
class MerchantAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Editing the high_value flag is pay_admin-only and audited: the API enforces that, the admin
    # only shows. The webhook secret is never displayed.
    list_display = ("name", "id", "country", "tier", "high_value", "contact_email", "webhook_url")
    list_filter = ("high_value", "country", "tier")
    search_fields = ("=id", "name", "contact_email")
    exclude = ("webhook_secret",)
    actions = ["rotate_secret"]

    @admin.action(description="Rotate the webhook signing secret of the selected merchants")
    def rotate_secret(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda merchant, actor: services.rotate_webhook_secret(merchant.pk, actor=actor),
            "Rotated the secret of {count} merchant(s); read the new one through the API.",
        )


class NoticeDeliveryInline(admin.TabularInline):
    model = NoticeDelivery
    extra = 0
    can_delete = False
    readonly_fields = ("attempt", "outcome", "status_code", "error", "duration_ms", "created_at")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(MerchantNotice)
class MerchantNoticeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "merchant",
        "kind",
        "channel",
        "plugin_name",
        "to_version",
        "status",
        "attempts",
    )
    list_filter = ("kind", "channel", "status")
    search_fields = ("=merchant__id", "merchant__name", "plugin_name")
    inlines = [NoticeDeliveryInline]
