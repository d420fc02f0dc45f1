"""Payment health reports in and out, and canary analyses out."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.utils import timezone
from rest_framework import serializers

from molam_upgrades.api.fields import (
    AwareDateTimeField,
    PluginNameField,
    StrictIntegerField,
    StrictUUIDField,
    VersionField,
)
from molam_upgrades.api.serializers import OutputModelSerializer, envelope

from ..choices import FailureReason
from ..models import CanaryAnalysis, PaymentHealthReport

MAX_PER_HOUR = 10_000_000
MAX_LATENCY_MS = 600_000.0
# Older hours are refused: a canary judgement only reads the last day or so, and a backlog
# this old is more likely a clock problem than data.
MAX_AGE = timedelta(days=7)


class StrictNumberField(serializers.FloatField):
    """A JSON number (not a string, not a boolean)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class LatencySerializer(serializers.Serializer):
    count = StrictIntegerField(min_value=0, max_value=MAX_PER_HOUR)
    p50 = StrictNumberField(required=False, allow_null=True, min_value=0, max_value=MAX_LATENCY_MS)
    p95 = StrictNumberField(required=False, allow_null=True, min_value=0, max_value=MAX_LATENCY_MS)

    def validate(self, attrs):
        if attrs["count"] > 0 and (attrs.get("p50") is None or attrs.get("p95") is None):
            raise serializers.ValidationError("p50 and p95 are required when count is above 0.")
        if attrs.get("p50") is not None and attrs.get("p95") is not None and attrs["p50"] > attrs["p95"]:
            raise serializers.ValidationError("p50 cannot be above p95.")
        return attrs


class FailedByReasonField(serializers.DictField):
    child = StrictIntegerField(min_value=0, max_value=MAX_PER_HOUR)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        unknown = sorted(set(value) - set(FailureReason.values))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown reason class {unknown[0]!r}; use one of {', '.join(FailureReason.values)}."
            )
        return value


class PaymentHealthInputSerializer(serializers.Serializer):
    """One hour of checkout figures from a merchant's plugin."""

    merchant_id = StrictUUIDField()
    plugin_name = PluginNameField()
    installed_version = VersionField()
    # Converted to UTC, not to the server's TIME_ZONE, before "minutes and seconds 0" is checked:
    # in a zone with a half-hour offset that check would otherwise accept 08:30 UTC.
    hour = AwareDateTimeField(
        default_timezone=UTC, help_text="Start of the UTC hour, e.g. 2026-11-29T08:00:00Z."
    )
    attempted = StrictIntegerField(min_value=0, max_value=MAX_PER_HOUR)
    succeeded = StrictIntegerField(min_value=0, max_value=MAX_PER_HOUR)
    failed_by_reason = FailedByReasonField(required=False, default=dict)
    latency_ms = LatencySerializer(required=False)

    def validate_hour(self, value):
        if value.minute or value.second or value.microsecond:
            raise serializers.ValidationError("Must be the start of an hour (minutes and seconds 0).")
        now = timezone.now()
        if value > now:
            raise serializers.ValidationError("Cannot be in the future.")
        if value < now - MAX_AGE:
            raise serializers.ValidationError("Hours older than 7 days are not accepted.")
        return value

    def validate(self, attrs):
        failed = sum(attrs.get("failed_by_reason", {}).values())
        if attrs["succeeded"] + failed > attrs["attempted"]:
            raise serializers.ValidationError(
                {"attempted": ["Must be at least succeeded + the failures by reason."]}
            )
        latency = attrs.pop("latency_ms", None) or {"count": 0}
        attrs["latency_count"] = latency["count"]
        attrs["latency_p50_ms"] = latency.get("p50")
        attrs["latency_p95_ms"] = latency.get("p95")
        return attrs


class PaymentHealthSerializer(OutputModelSerializer):
    class Meta:
        model = PaymentHealthReport
        fields = [
            "merchant_id",
            "plugin_name",
            "installed_version",
            "hour",
            "attempted",
            "succeeded",
            "failed",
            "failed_by_reason",
            "latency_count",
            "latency_p50_ms",
            "latency_p95_ms",
            "received_at",
            "updated_at",
        ]


PaymentHealthResponse = envelope(
    "PaymentHealthResponse",
    payment_health=PaymentHealthSerializer(),
    created=serializers.BooleanField(read_only=True, help_text="False when the hour was already stored."),
)


class CanaryAnalysisSerializer(OutputModelSerializer):
    rollout_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = CanaryAnalysis
        fields = [
            "rollout_id",
            "verdict",
            "success_verdict",
            "latency_verdict",
            "summary",
            "figures",
            "window_start",
            "window_end",
            "computed_at",
        ]


CanaryAnalysisResponse = envelope("CanaryAnalysisResponse", ok=None, canary=CanaryAnalysisSerializer())
