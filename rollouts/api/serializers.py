"""Validation and response shapes for rollouts, releases and decisions (seed JSON keys)."""

from __future__ import annotations

import base64
import binascii
import uuid
from decimal import Decimal, InvalidOperation

from rest_framework import serializers

from molam_upgrades.api.fields import (
    PluginNameField,
    ReasonField,
    Sha256Field,
    StrictBooleanField,
    StrictIntegerField,
    VersionField,
)
from molam_upgrades.versions import COUNTRY_RE, TIER_RE, is_valid_version

from ..choices import RolloutStatus, RolloutStrategy
from ..cohort import as_number
from ..models import Release, Rollout


class StrictDecimalField(serializers.DecimalField):
    """A JSON number (not a string or a boolean) with bounded precision."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        try:
            value = Decimal(str(data))
        except InvalidOperation:
            self.fail("invalid")
        return super().to_internal_value(value)


def percentage_field(**kwargs) -> StrictDecimalField:
    return StrictDecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0"), max_value=Decimal("100"), **kwargs
    )


class CountryListField(serializers.ListField):
    child = serializers.CharField()

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        bad = [v for v in values if not COUNTRY_RE.match(v)]
        if bad:
            raise serializers.ValidationError(
                f"Use ISO 3166 alpha-2 codes in upper case (e.g. US, FR, SN); got {', '.join(bad[:5])}."
            )
        return sorted(set(values))


class TierListField(serializers.ListField):
    child = serializers.CharField()

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        bad = [v for v in values if not TIER_RE.match(v)]
        if bad:
            raise serializers.ValidationError(
                f"Tiers are lower-case words such as enterprise, pro; got {', '.join(bad[:5])}."
            )
        return sorted(set(values))


class RolloutCreateSerializer(serializers.Serializer):
    plugin_name = PluginNameField()
    version = VersionField()
    percentage = percentage_field()
    strategy = serializers.ChoiceField(choices=RolloutStrategy.choices, default=RolloutStrategy.RANDOM)
    target_countries = CountryListField(required=False, max_length=250)
    target_tiers = TierListField(required=False, max_length=50)
    error_threshold = StrictDecimalField(
        max_digits=5, decimal_places=4, required=False, max_value=Decimal("1")
    )
    sira_monitoring = StrictBooleanField(required=False)
    min_sample_size = StrictIntegerField(required=False, min_value=1, max_value=1_000_000)
    metadata = serializers.DictField(required=False)

    def validate_error_threshold(self, value):
        if value <= 0:
            raise serializers.ValidationError("Must be greater than 0 and at most 1 (e.g. 0.03 for 3 %).")
        return value

    def validate(self, attrs):
        strategy = attrs.get("strategy", RolloutStrategy.RANDOM)
        countries, tiers = attrs.get("target_countries") or [], attrs.get("target_tiers") or []
        errors = {}
        if strategy == RolloutStrategy.GEO and not countries:
            errors["target_countries"] = ["The geo strategy needs at least one target country."]
        if strategy == RolloutStrategy.MERCHANT_TIER and not tiers:
            errors["target_tiers"] = ["The merchant_tier strategy needs at least one target tier."]
        if countries and strategy != RolloutStrategy.GEO:
            errors["target_countries"] = [f"Target countries only apply to the geo strategy, not {strategy}."]
        if tiers and strategy != RolloutStrategy.MERCHANT_TIER:
            errors["target_tiers"] = [
                f"Target tiers only apply to the merchant_tier strategy, not {strategy}."
            ]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def to_model_fields(self) -> dict:
        data = self.validated_data
        fields = {
            "plugin_name": data["plugin_name"],
            "version": data["version"],
            "rollout_percentage": data["percentage"],
            "rollout_strategy": data.get("strategy", RolloutStrategy.RANDOM),
            "target_countries": data.get("target_countries") or [],
            "target_tiers": data.get("target_tiers") or [],
        }
        for key in ("error_threshold", "sira_monitoring", "min_sample_size", "metadata"):
            if key in data:
                fields[key] = data[key]
        return fields


class RolloutPatchSerializer(serializers.Serializer):
    percentage = percentage_field(required=False)
    status = serializers.ChoiceField(choices=RolloutStatus.choices, required=False)
    reason = ReasonField(required=False, allow_blank=True)

    def validate(self, attrs):
        if "percentage" not in attrs and "status" not in attrs:
            raise serializers.ValidationError("Give a percentage and/or a status.")
        return attrs


class PauseSerializer(serializers.Serializer):
    reason = ReasonField(required=False, allow_blank=True)


class RolloutListQuerySerializer(serializers.Serializer):
    include_metrics = serializers.ChoiceField(
        choices=["true", "false", "1", "0"], required=False, default="false"
    )

    def validate_include_metrics(self, value: str) -> bool:
        return value in ("true", "1")


def parse_decision_query(params) -> dict:
    """Validate should-upgrade query parameters.

    Hand-written rather than a serializer: this is the hot path, and the same shared
    validators (UUID, version, country, tier) apply.
    """
    errors: dict[str, list[str]] = {}
    parsed: dict = {"current_version": None, "country": None, "tier": None}
    raw_merchant = params.get("merchant_id")
    if not raw_merchant:
        errors["merchant_id"] = ["This parameter is required."]
    else:
        try:
            parsed["merchant_id"] = uuid.UUID(raw_merchant)
        except ValueError:
            errors["merchant_id"] = ["Must be a valid UUID."]
    current = params.get("current_version")
    if current:
        if is_valid_version(current):
            parsed["current_version"] = current
        else:
            errors["current_version"] = ["Must be a dotted numeric version such as 4.0.0 or 1.8.0-rc.1."]
    country = params.get("country")
    if country:
        if COUNTRY_RE.match(country.upper()):
            parsed["country"] = country.upper()
        else:
            errors["country"] = ["Use an ISO 3166 alpha-2 country code such as US or SN."]
    tier = params.get("tier")
    if tier:
        if TIER_RE.match(tier.lower()):
            parsed["tier"] = tier.lower()
        else:
            errors["tier"] = ["Tiers are lower-case words such as enterprise or pro."]
    if errors:
        raise serializers.ValidationError(errors)
    return parsed


class ReleaseCreateSerializer(serializers.Serializer):
    plugin_name = PluginNameField()
    version = VersionField()
    download_url = serializers.URLField(max_length=2048)
    sha256 = Sha256Field()
    signature = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate_signature(self, value: str) -> str:
        if not value:
            return ""
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise serializers.ValidationError("Must be a base64 Ed25519 signature.") from exc
        if len(raw) != 64:
            raise serializers.ValidationError("An Ed25519 signature is 64 bytes (88 base64 characters).")
        return value


def rollout_data(rollout: Rollout) -> dict:
    data = {
        "id": rollout.pk,
        "plugin_name": rollout.plugin_name,
        "version": rollout.version,
        "rollout_percentage": as_number(Decimal(rollout.rollout_percentage)),
        "rollout_strategy": rollout.rollout_strategy,
        "status": rollout.status,
        "target_countries": rollout.target_countries or [],
        "target_tiers": rollout.target_tiers or [],
        "sira_monitoring": rollout.sira_monitoring,
        "error_threshold": float(rollout.error_threshold),
        "min_sample_size": rollout.min_sample_size,
        "auto_paused": rollout.auto_paused,
        "paused_reason": rollout.paused_reason,
        "paused_by": rollout.paused_by,
        "paused_at": rollout.paused_at.isoformat() if rollout.paused_at else None,
        "created_by": rollout.created_by,
        "created_at": rollout.created_at.isoformat(),
        "updated_at": rollout.updated_at.isoformat() if rollout.updated_at else None,
        "completed_at": rollout.completed_at.isoformat() if rollout.completed_at else None,
        "metadata": rollout.metadata or {},
    }
    if hasattr(rollout, "reports_total"):
        from ..metrics import error_rate

        rate = error_rate(rollout.reports_total, rollout.reports_failed)
        data.update(
            merchants_upgraded=rollout.merchants_upgraded,
            upgrades_total=rollout.reports_total,
            upgrades_failed=rollout.reports_failed,
            error_rate=float(rate),
            error_rate_above_threshold=rate > rollout.error_threshold,
        )
    return data


def release_data(release: Release) -> dict:
    return {
        "id": release.pk,
        "plugin_name": release.plugin_name,
        "version": release.version,
        "download_url": release.download_url,
        "sha256": release.sha256,
        "signature": release.signature or None,
        "created_by": release.created_by,
        "created_at": release.created_at.isoformat(),
    }
