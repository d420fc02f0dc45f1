"""The merchant registry in and out; notices and their delivery log out."""

from __future__ import annotations

import zoneinfo

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from molam_upgrades.api.fields import StrictBooleanField, StrictUUIDField
from molam_upgrades.api.serializers import OutputModelSerializer, envelope

from .. import egress
from ..models import Merchant, MerchantNotice, NoticeDelivery


@extend_schema_field(
    {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$", "example": "22:00", "nullable": True}
)
class WallClockTimeField(serializers.TimeField):
    """A local wall-clock time ``HH:MM`` in the merchant's time zone: no seconds, no UTC offset."""

    def __init__(self, **kwargs):
        super().__init__(format="%H:%M", input_formats=["%H:%M"], **kwargs)

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="HH:MM")
        return super().to_internal_value(value)


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class CountryField(StrictCharField):
    default_error_messages = {"invalid_country": "Must be an ISO 3166 alpha-2 code in upper case (e.g. SN)."}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value and not (len(value) == 2 and value.isascii() and value.isalpha() and value.isupper()):
            self.fail("invalid_country")
        return value


class WebhookUrlField(StrictCharField):
    """A public https:// endpoint (``merchants.egress.check_webhook_url``): the control plane
    POSTs to it from inside its own network, so no private address, local name or userinfo.
    ``MERCHANT_WEBHOOK_ALLOW_PRIVATE`` (development, tests) allows those and http:// to loopback."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value:
            return value
        try:
            egress.check_webhook_url(value, allow_private=egress.private_allowed())
        except egress.UnsafeDestination as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value


class TimeZoneField(StrictCharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise serializers.ValidationError(
                f"{value!r} is not a known time zone (e.g. Africa/Dakar)."
            ) from exc
        return value


class MerchantUpdateSerializer(serializers.Serializer):
    name = StrictCharField(required=False, max_length=200)
    country = CountryField(required=False, allow_blank=True, max_length=2)
    tier = StrictCharField(required=False, allow_blank=True, max_length=32)
    high_value = StrictBooleanField(required=False)
    contact_email = serializers.EmailField(required=False, allow_blank=True)
    webhook_url = WebhookUrlField(required=False, allow_blank=True, max_length=2048)
    quiet_start = WallClockTimeField(required=False, allow_null=True)
    quiet_end = WallClockTimeField(required=False, allow_null=True)
    time_zone = TimeZoneField(required=False, max_length=64)

    def validate(self, attrs):
        if not attrs and not self.partial_required:
            raise serializers.ValidationError("Give at least one field to change.")
        if ("quiet_start" in attrs) != ("quiet_end" in attrs):
            raise serializers.ValidationError("Give quiet_start and quiet_end together.")
        if (attrs.get("quiet_start") is None) != (attrs.get("quiet_end") is None):
            raise serializers.ValidationError("quiet_start and quiet_end are both set or both null.")
        return attrs

    partial_required = False


class MerchantCreateSerializer(MerchantUpdateSerializer):
    merchant_id = StrictUUIDField()
    name = StrictCharField(max_length=200)
    partial_required = True


class MerchantSerializer(OutputModelSerializer):
    """A merchant as ops see it (never the webhook secret)."""

    merchant_id = serializers.UUIDField(source="id", read_only=True)
    quiet_period = serializers.CharField(source="quiet_period_label", read_only=True)
    # An address or "" (none given): the model fields' schemas would say e-mail / URI only.
    contact_email = serializers.EmailField(read_only=True, allow_blank=True)
    webhook_url = serializers.URLField(read_only=True, allow_blank=True)
    quiet_start = WallClockTimeField(read_only=True, allow_null=True)
    quiet_end = WallClockTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Merchant
        fields = [
            "merchant_id",
            "name",
            "country",
            "tier",
            "high_value",
            "contact_email",
            "webhook_url",
            "quiet_start",
            "quiet_end",
            "time_zone",
            "quiet_period",
            "created_at",
            "updated_at",
        ]


MerchantResponse = envelope("MerchantResponse", merchant=MerchantSerializer())
MerchantDetailResponse = envelope("MerchantDetailResponse", ok=None, merchant=MerchantSerializer())
MerchantSecretResponse = envelope(
    "MerchantSecretResponse",
    merchant=MerchantSerializer(),
    webhook_secret=serializers.CharField(
        read_only=True, help_text="Shown once: the key receivers verify X-Molam-Signature with."
    ),
)


class NoticeDeliverySerializer(OutputModelSerializer):
    class Meta:
        model = NoticeDelivery
        fields = ["attempt", "outcome", "status_code", "error", "duration_ms", "created_at"]


class NoticeSerializer(OutputModelSerializer):
    notice_id = serializers.UUIDField(source="id", read_only=True)
    merchant_id = serializers.UUIDField(read_only=True)
    deliveries = NoticeDeliverySerializer(many=True, read_only=True)

    class Meta:
        model = MerchantNotice
        fields = [
            "notice_id",
            "merchant_id",
            "kind",
            "channel",
            "plugin_name",
            "from_version",
            "to_version",
            "effective_at",
            "subject",
            "status",
            "deliver_after",
            "attempts",
            "delivered_at",
            "last_error",
            "created_at",
            "deliveries",
        ]
