"""Input and output shapes of the plans API (typed, so the OpenAPI schema says what is sent)."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from molam_upgrades.api.fields import ReasonField, StrictIntegerField
from molam_upgrades.api.serializers import envelope
from rollouts.api.serializers import RolloutCreateSerializer
from rollouts.cohort import as_number

from ..choices import DAY_NAMES, GateKind
from ..schedule import ScheduleError, normalize_windows, zone
from ..stages import MAX_STAGES, StageError, parse_stages

# --- input ----------------------------------------------------------------------------------


class StageInputSerializer(serializers.Serializer):
    """One stage as a client writes it (documentation; ``parse_stages`` is the one validation)."""

    percentage = serializers.DecimalField(
        max_digits=5, decimal_places=2, help_text="0.01–100, rising from stage to stage."
    )
    min_soak_minutes = serializers.IntegerField(
        required=False, min_value=0, help_text="Minimum time at this stage."
    )
    min_merchants = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="Merchants reporting (as Sira counts them) before the next stage.",
    )
    max_error_rate = serializers.DecimalField(
        max_digits=5,
        decimal_places=4,
        required=False,
        allow_null=True,
        help_text="Default: the rollout's error_threshold.",
    )
    gate = serializers.ChoiceField(choices=GateKind.choices, required=False, default=GateKind.RATE)


class StagesField(serializers.ListField):
    child = StageInputSerializer()

    def to_internal_value(self, data):
        try:
            return parse_stages(data)
        except StageError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class WindowSerializer(serializers.Serializer):
    days = serializers.ListField(child=serializers.ChoiceField(choices=list(DAY_NAMES)), min_length=1)
    start = serializers.RegexField(r"^\d{2}:\d{2}$", help_text="HH:MM, local time.")
    end = serializers.RegexField(
        r"^\d{2}:\d{2}$", help_text="HH:MM, local time; at or before start: the window ends the next day."
    )


class WindowsField(serializers.ListField):
    child = WindowSerializer()

    def to_internal_value(self, data):
        try:
            return normalize_windows(data)
        except ScheduleError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class TimeZoneField(serializers.CharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            zone(value)
        except ScheduleError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value


class TemplateCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    slug = serializers.SlugField(max_length=64, required=False, help_text="Default: made from the name.")
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    stages = StagesField(max_length=MAX_STAGES)


class PlanAttachSerializer(serializers.Serializer):
    template = serializers.CharField(
        max_length=64, required=False, help_text="Slug or id of a plan template (its stages are copied)."
    )
    stages = StagesField(
        required=False, max_length=MAX_STAGES, help_text="The rollout's own stages (no template)."
    )
    timezone = TimeZoneField(
        max_length=64, required=False, default="UTC", help_text="IANA name, e.g. Africa/Dakar."
    )
    windows = WindowsField(
        required=False,
        max_length=21,
        help_text="Allowed windows; none means any time. Stages advance and agents upgrade only inside them.",
    )

    def validate(self, attrs):
        if ("template" in attrs) == ("stages" in attrs):
            raise serializers.ValidationError("Give either a template or stages.")
        return attrs


class ReasonSerializer(serializers.Serializer):
    reason = ReasonField(required=False, allow_blank=True)


class SimulateSerializer(RolloutCreateSerializer):
    """The fields of ``POST rollouts`` (same rules), plus how many ids to sample."""

    sample_size = StrictIntegerField(required=False, min_value=0, max_value=100, default=20)


# --- output ---------------------------------------------------------------------------------


class StageSerializer(serializers.Serializer):
    percentage = serializers.FloatField()
    min_soak_minutes = serializers.IntegerField()
    min_merchants = serializers.IntegerField()
    max_error_rate = serializers.FloatField(allow_null=True)
    gate = serializers.ChoiceField(choices=GateKind.choices)

    def to_representation(self, instance):
        return {
            "percentage": as_number(Decimal(str(instance["percentage"]))),
            "min_soak_minutes": instance["min_soak_minutes"],
            "min_merchants": instance["min_merchants"],
            "max_error_rate": None
            if instance.get("max_error_rate") is None
            else float(instance["max_error_rate"]),
            "gate": instance.get("gate", GateKind.RATE),
        }


class PlanStageSerializer(StageSerializer):
    number = serializers.IntegerField()
    state = serializers.ChoiceField(choices=["done", "current", "upcoming"])
    entered_at = serializers.CharField(allow_null=True)
    left_at = serializers.CharField(allow_null=True)

    def to_representation(self, instance):
        return {
            "number": instance["number"],
            "state": instance["state"],
            "entered_at": instance["entered_at"],
            "left_at": instance["left_at"],
            **super().to_representation(instance),
        }


class PlanTemplateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    stages = StageSerializer(many=True)
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()

    def to_representation(self, instance):
        return {
            "id": instance.pk,
            "slug": instance.slug,
            "name": instance.name,
            "description": instance.description,
            "stages": [StageSerializer().to_representation(s) for s in instance.stages],
            "created_by": instance.created_by,
            "created_at": instance.created_at.isoformat(),
        }


PLAN_STATES = ["finished", "paused", "held", "outside_window", "waiting", "ready"]


class PlanSerializer(serializers.Serializer):
    """A rollout's plan and where it stands (``plans.progress.Progress.as_dict()``)."""

    rollout_id = serializers.IntegerField()
    template = serializers.CharField(allow_null=True)
    template_name = serializers.CharField(allow_null=True)
    state = serializers.ChoiceField(choices=PLAN_STATES)
    summary = serializers.CharField()
    current_stage = serializers.IntegerField(help_text="1-based.")
    stage_started_at = serializers.CharField()
    soak_started_at = serializers.CharField()
    held = serializers.BooleanField()
    held_reason = serializers.CharField(allow_null=True)
    held_by = serializers.CharField(allow_null=True)
    finished_at = serializers.CharField(allow_null=True)
    timezone = serializers.CharField()
    windows = WindowSerializer(many=True)
    window_open = serializers.BooleanField()
    next_window_at = serializers.CharField(allow_null=True)
    merchants_reporting = serializers.IntegerField()
    merchants_failed = serializers.IntegerField()
    waiting_for = serializers.ListField(child=serializers.CharField())
    stages = PlanStageSerializer(many=True)

    def to_representation(self, instance):
        data = instance.as_dict()
        data["stages"] = [PlanStageSerializer().to_representation(s) for s in data["stages"]]
        return data


class CountRowSerializer(serializers.Serializer):
    known = serializers.IntegerField()
    selected = serializers.IntegerField()


class CountryRowSerializer(CountRowSerializer):
    country = serializers.CharField(help_text="ISO code, or unknown.")


class TierRowSerializer(CountRowSerializer):
    tier = serializers.CharField(help_text="Tier, or unknown.")


class SimulationSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    dry_run = serializers.BooleanField(help_text="Always true: nothing was written.")
    plugin_name = serializers.CharField()
    version = serializers.CharField()
    rollout_percentage = serializers.FloatField()
    rollout_strategy = serializers.CharField()
    target_countries = serializers.ListField(child=serializers.CharField())
    target_tiers = serializers.ListField(child=serializers.CharField())
    known_merchants = serializers.IntegerField(help_text="Merchants that reported on this plugin before.")
    targeted_merchants = serializers.IntegerField(help_text="Of those, in the strategy's targets.")
    selected_merchants = serializers.IntegerField(help_text="Of those, in the percentage's cohort.")
    by_country = CountryRowSerializer(many=True)
    by_tier = TierRowSerializer(many=True)
    sample_merchant_ids = serializers.ListField(child=serializers.UUIDField())

    def to_representation(self, instance):
        return instance

    class Meta:
        ref_name = "RolloutSimulation"


PlanTemplateResponse = envelope("PlanTemplateResponse", template=PlanTemplateSerializer())
PlanTemplateDetailResponse = envelope(
    "PlanTemplateDetailResponse", ok=None, template=PlanTemplateSerializer()
)
PlanResponse = envelope("PlanResponse", plan=PlanSerializer())
PlanDetailResponse = envelope("PlanDetailResponse", ok=None, plan=PlanSerializer())
PlanDetachedResponse = envelope("PlanDetachedResponse", rollout_id=serializers.IntegerField())
