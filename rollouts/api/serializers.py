"""Validation and response shapes for rollouts, releases and decisions (seed JSON keys)."""

from __future__ import annotations

import base64
import binascii
import uuid
from decimal import Decimal, InvalidOperation

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from molam_upgrades.api.fields import (
    NumberField,
    PluginNameField,
    ReasonField,
    Sha256Field,
    StrictBooleanField,
    StrictIntegerField,
    VersionField,
)
from molam_upgrades.api.serializers import OutputModelSerializer, envelope
from molam_upgrades.exceptions import DomainError
from molam_upgrades.versions import COUNTRY_RE, TIER_RE, is_valid_version

from ..choices import RolloutStatus, RolloutStrategy
from ..cohort import as_number
from ..models import Release, Rollout
from ..signing import check_download_url


class StrictDecimalField(serializers.DecimalField):
    """A JSON number (not a string or a boolean) with bounded precision."""

    def __init__(self, **kwargs):
        # Published as a number (the only input accepted), not DRF's default decimal string.
        kwargs.setdefault("coerce_to_string", False)
        super().__init__(**kwargs)

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


def _refuse_too_many(field: serializers.ListField, data) -> None:
    """``max_length`` counts the items sent (the schema's maxItems), not what is left after dedup."""
    if field.max_length is not None and isinstance(data, list) and len(data) > field.max_length:
        field.fail("max_length", max_length=field.max_length)


@extend_schema_field({"type": "string", "pattern": COUNTRY_RE.pattern})
class _CountryCode(serializers.CharField):
    pass


@extend_schema_field({"type": "string", "pattern": TIER_RE.pattern})
class _Tier(serializers.CharField):
    pass


class CountryListField(serializers.ListField):
    child = _CountryCode()

    def to_internal_value(self, data):
        _refuse_too_many(self, data)
        values = super().to_internal_value(data)
        bad = [v for v in values if not COUNTRY_RE.match(v)]
        if bad:
            raise serializers.ValidationError(
                f"Use ISO 3166 alpha-2 codes in upper case (e.g. US, FR, SN); got {', '.join(bad[:5])}."
            )
        return sorted(set(values))


class TierListField(serializers.ListField):
    child = _Tier()

    def to_internal_value(self, data):
        _refuse_too_many(self, data)
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
    wilson_gate = StrictBooleanField(
        required=False,
        help_text="Pause only when the Wilson 95 % lower bound of the error rate exceeds the threshold.",
    )
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
        for key in ("error_threshold", "sira_monitoring", "min_sample_size", "wilson_gate", "metadata"):
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


class DecisionQuerySerializer(serializers.Serializer):
    """The should-upgrade query, for the schema (``parse_decision_query`` validates it by hand)."""

    merchant_id = serializers.UUIDField()
    current_version = VersionField(
        required=False,
        help_text="Installed version; no upgrade when already on the rollout's version or newer.",
    )
    # Case-insensitive: parse_decision_query upper-cases countries and lower-cases tiers.
    country = serializers.RegexField(
        r"^[A-Za-z]{2}$", required=False, help_text="ISO 3166 alpha-2, for geo rollouts."
    )
    tier = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$",
        required=False,
        help_text="Merchant tier, for merchant_tier rollouts.",
    )


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

    def validate_download_url(self, value: str) -> str:
        try:
            check_download_url(value)
        except DomainError as exc:
            raise serializers.ValidationError(exc.details["download_url"]) from exc
        return value

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


# --- responses ---------------------------------------------------------------------------

METRIC_FIELDS = frozenset(
    {
        "merchants_upgraded",
        "merchants_reporting",
        "merchants_failed",
        "upgrades_total",
        "upgrades_failed",
        "reports_outside_cohort",
        "error_rate",
        "error_rate_lower_bound",
        "error_rate_above_threshold",
    }
)


class ErrorRateField(serializers.FloatField):
    def __init__(self, **kwargs):
        super().__init__(source="*", **kwargs)

    def to_representation(self, rollout: Rollout) -> float:
        return float(rollout.health.error_rate)


class LowerBoundField(serializers.FloatField):
    def __init__(self, **kwargs):
        super().__init__(source="*", **kwargs)

    def to_representation(self, rollout: Rollout) -> float:
        return round(rollout.health.lower_bound, 4)


class AboveThresholdField(serializers.BooleanField):
    def __init__(self, **kwargs):
        super().__init__(source="*", **kwargs)

    def to_representation(self, rollout: Rollout) -> bool:
        return rollout.error_rate_above_threshold


class RolloutSerializer(OutputModelSerializer):
    """A rollout; with ``include_metrics`` (and on GET rollouts/<plugin>) also its live health.

    Health counts merchants, not requests: cohort merchants that reported, each by its latest
    outcome (``rollbacks.reports.rollout_error_rates``).
    """

    rollout_percentage = serializers.SerializerMethodField()
    error_threshold = serializers.FloatField(read_only=True)
    target_countries = serializers.ListField(child=serializers.CharField(), read_only=True)
    target_tiers = serializers.ListField(child=serializers.CharField(), read_only=True)
    metadata = serializers.DictField(read_only=True)
    # Present only when the rollout was loaded with its metrics: not read-only in the schema's
    # sense, so the schema lists them as optional (this serializer is never used for input).
    merchants_upgraded = serializers.IntegerField(
        source="health.merchants_upgraded",
        required=False,
        help_text="With metrics: cohort merchants whose latest report is a successful upgrade.",
    )
    merchants_reporting = serializers.IntegerField(
        source="health.merchants",
        required=False,
        help_text="With metrics: cohort merchants that reported, each counted once (the error rate's sample).",
    )
    merchants_failed = serializers.IntegerField(
        source="health.merchants_failed",
        required=False,
        help_text="With metrics: cohort merchants whose latest report is failed or rolled back.",
    )
    upgrades_total = serializers.IntegerField(
        source="health.reports", required=False, help_text="With metrics: reports from cohort merchants."
    )
    upgrades_failed = serializers.IntegerField(
        source="health.reports_failed",
        required=False,
        help_text="With metrics: failed or rolled-back reports from cohort merchants.",
    )
    reports_outside_cohort = serializers.IntegerField(
        source="health.reports_outside_cohort",
        required=False,
        help_text="With metrics: reports from merchants the rollout did not select (stored, never counted).",
    )
    error_rate = ErrorRateField(
        required=False, help_text="With metrics: merchants failed / merchants reporting, 0–1."
    )
    error_rate_lower_bound = LowerBoundField(
        required=False, help_text="With metrics: Wilson 95 % lower bound of the error rate, 0–1."
    )
    error_rate_above_threshold = AboveThresholdField(
        required=False,
        help_text="With metrics: the rate Sira judges (the lower bound with wilson_gate) is above the threshold.",
    )

    class Meta:
        model = Rollout
        fields = [
            "id",
            "plugin_name",
            "version",
            "rollout_percentage",
            "rollout_strategy",
            "status",
            "target_countries",
            "target_tiers",
            "sira_monitoring",
            "error_threshold",
            "min_sample_size",
            "wilson_gate",
            "auto_paused",
            "paused_reason",
            "paused_by",
            "paused_at",
            "created_by",
            "created_at",
            "updated_at",
            "completed_at",
            "metadata",
            *sorted(METRIC_FIELDS),
        ]

    @extend_schema_field(OpenApiTypes.NUMBER)
    def get_rollout_percentage(self, rollout: Rollout) -> int | float:
        return as_number(Decimal(rollout.rollout_percentage))

    def to_representation(self, rollout: Rollout) -> dict:
        with_metrics = "health" in rollout.__dict__  # attached by attach_error_rates()
        data = {}
        for field in self._readable_fields:
            if field.field_name in METRIC_FIELDS and not with_metrics:
                continue
            value = field.get_attribute(rollout)
            data[field.field_name] = None if value is None else field.to_representation(value)
        return data


class ReleaseSerializer(OutputModelSerializer):
    """A downloadable release and how to verify it."""

    signature = serializers.SerializerMethodField()

    class Meta:
        model = Release
        fields = [
            "id",
            "plugin_name",
            "version",
            "download_url",
            "sha256",
            "signature",
            "created_by",
            "created_at",
        ]

    def get_signature(self, release: Release) -> str | None:
        return release.signature or None


RolloutResponse = envelope("RolloutResponse", rollout=RolloutSerializer())
RolloutDetailResponse = envelope("RolloutDetailResponse", ok=None, rollout=RolloutSerializer())
ReleaseResponse = envelope("ReleaseResponse", release=ReleaseSerializer())


class PausedRolloutSerializer(serializers.Serializer):
    rollout_id = serializers.IntegerField()
    plugin_name = serializers.CharField()
    version = serializers.CharField()
    error_rate = serializers.FloatField()
    threshold = serializers.FloatField()
    merchants_reporting = serializers.IntegerField()
    merchants_failed = serializers.IntegerField()
    upgrades_total = serializers.IntegerField()
    upgrades_failed = serializers.IntegerField()
    check = serializers.CharField(
        required=False, help_text="The Sira rule that paused it when not the error rate (payment_canary)."
    )
    reason = serializers.CharField(required=False, help_text="The pause reason, with the test's figures.")


AutoCheckResponse = envelope(
    "AutoCheckResponse",
    paused_count=serializers.IntegerField(),
    paused_rollouts=PausedRolloutSerializer(many=True),
)


class DecisionReleaseSerializer(serializers.Serializer):
    download_url = serializers.URLField()
    sha256 = serializers.CharField()
    signature = serializers.CharField(allow_null=True, help_text="Base64 Ed25519 signature, if signed.")


class DecisionSerializer(serializers.Serializer):
    """The should-upgrade answer (``rollouts.cohort.decide``; sent as built, it is the hot path)."""

    should_upgrade = serializers.BooleanField()
    reason = serializers.CharField()
    rollout_id = serializers.IntegerField(allow_null=True)
    rollout_percentage = NumberField(allow_null=True)
    rollout_strategy = serializers.ChoiceField(choices=RolloutStrategy.choices, allow_null=True)
    version = serializers.CharField(allow_null=True)
    bucket = serializers.IntegerField(allow_null=True, help_text="The merchant's bucket, 0–9999.")
    release = DecisionReleaseSerializer(allow_null=True)
    retry_after = serializers.IntegerField(
        required=False,
        help_text="Only outside the rollout's upgrade windows: seconds until the next one opens.",
    )
