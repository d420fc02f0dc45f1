"""Request validation and response shapes for the 115bis endpoints (seed JSON keys)."""

from __future__ import annotations

from rest_framework import serializers

from molam_upgrades.api.fields import (
    NumberField,
    PluginNameField,
    ReasonField,
    StrictBooleanField,
    StrictIntegerField,
    StrictUUIDField,
    VersionField,
)
from molam_upgrades.api.serializers import OutputModelSerializer, SharedFieldsMixin, envelope

from ..choices import RollbackEventStatus, RollbackProgress, RollbackTrigger, UpgradeStatus
from ..models import RollbackHistory, UpgradeLog

MAX_DURATION_MS = 24 * 3600 * 1000


class UpgradeReportSerializer(SharedFieldsMixin, serializers.Serializer):
    merchant_id = StrictUUIDField()
    plugin_name = PluginNameField()
    from_version = VersionField()
    to_version = VersionField()
    status = serializers.ChoiceField(choices=UpgradeStatus.choices)
    error = ReasonField(required=False, allow_blank=True, allow_null=True, max_length=10000)
    duration_ms = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=MAX_DURATION_MS)


class RollbackEventSerializer(SharedFieldsMixin, serializers.Serializer):
    merchant_id = StrictUUIDField()
    plugin_name = PluginNameField()
    rollback_version = VersionField()
    status = serializers.ChoiceField(choices=RollbackEventStatus.choices)
    reason = ReasonField(allow_blank=True)
    from_version = VersionField(required=False)
    to_version = VersionField(required=False)


class RollbackInitiateSerializer(SharedFieldsMixin, serializers.Serializer):
    merchant_id = StrictUUIDField()
    plugin_name = PluginNameField()
    from_version = VersionField()
    to_version = VersionField()
    trigger = serializers.ChoiceField(choices=RollbackTrigger.choices)
    reason = ReasonField(allow_blank=True)


class ApprovalDecisionSerializer(serializers.Serializer):
    """Approve or reject a forced rollback awaiting approval (four eyes)."""

    reason = ReasonField(required=False, allow_blank=True)


class RollbackCompleteSerializer(serializers.Serializer):
    success = StrictBooleanField()
    duration_ms = StrictIntegerField(min_value=0, max_value=MAX_DURATION_MS)
    files_restored = StrictIntegerField(min_value=0, max_value=10_000_000)
    db_restored = StrictBooleanField()
    error_message = ReasonField(required=False, allow_blank=True, allow_null=True, max_length=10000)


class PendingQuerySerializer(serializers.Serializer):
    merchant_id = StrictUUIDField(required=False)
    plugin_name = PluginNameField(required=False)


# --- responses ---------------------------------------------------------------------------


class UpgradeLogSerializer(OutputModelSerializer):
    """An upgrade report and the rollback that followed it, if any."""

    class Meta:
        model = UpgradeLog
        fields = [
            "id",
            "merchant_id",
            "plugin_name",
            "from_version",
            "to_version",
            "status",
            "error",
            "duration_ms",
            "rollback_version",
            "rollback_status",
            "rollback_triggered_at",
            "rollback_reason",
            "created_at",
        ]


class RollbackSerializer(OutputModelSerializer):
    """A rollback from initiation to completion (``success`` is null while in progress)."""

    reason = serializers.CharField(source="rollback_reason", read_only=True, allow_null=True)
    error_rate_detected = serializers.FloatField(read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=RollbackProgress.choices, read_only=True)

    class Meta:
        model = RollbackHistory
        fields = [
            "rollback_id",
            "merchant_id",
            "plugin_name",
            "from_version",
            "to_version",
            "rollback_trigger",
            "success",
            "duration_ms",
            "files_restored",
            "db_restored",
            "reason",
            "error_message",
            "sira_triggered",
            "error_rate_detected",
            "rollout_id",
            "initiated_by",
            "status",
            "created_at",
            "completed_at",
            "approval_status",
            "approval_expires_at",
            "decided_by",
            "decided_at",
        ]


UpgradeLogResponse = envelope("UpgradeLogResponse", upgrade_log=UpgradeLogSerializer())
RollbackResponse = envelope("RollbackResponse", rollback=RollbackSerializer())
RollbackInitiatedResponse = envelope(
    "RollbackInitiatedResponse", rollback_id=serializers.UUIDField(), rollback=RollbackSerializer()
)
PendingRollbacksResponse = envelope(
    "PendingRollbacksResponse", ok=None, rollbacks=RollbackSerializer(many=True)
)


class PlainRowsListSerializer(serializers.ListSerializer):
    """A list of plain dicts written field by field without DRF's per-item machinery.

    ``Serializer.to_representation`` walks ``get_attribute``, ``_readable_fields`` and an
    ``OrderedDict`` per item: ~10 µs an item, the bulk of ``rollback/stats`` for 1,000 plugins.
    Here each item's keys are read directly (each field's ``source`` is a plain key) and each
    value goes through its field's own ``to_representation`` (``None`` stays ``None``, as DRF
    does), so keys, order and types are the declared fields' (the schema does not change).
    """

    def to_representation(self, data):
        fields = [
            (field.field_name, field.source, field.to_representation) for field in self.child._readable_fields
        ]
        return [
            {
                name: None if (value := item[source]) is None else write(value)
                for name, source, write in fields
            }
            for item in data
        ]


class PluginRollbackStatsSerializer(serializers.Serializer):
    plugin_name = serializers.CharField()
    total_rollbacks = serializers.IntegerField()
    successful_rollbacks = serializers.IntegerField()
    success_rate_pct = NumberField(allow_null=True)
    avg_duration_ms = serializers.IntegerField(allow_null=True)

    class Meta:
        list_serializer_class = PlainRowsListSerializer


class KpiSerializer(serializers.Serializer):
    """A seed KPI, its target and whether it is met (``ok`` null when there is no data yet)."""

    value = NumberField(allow_null=True)
    target = NumberField(allow_null=True)
    comparison = serializers.ChoiceField(choices=[">", "<", "<=", "monitor"])
    ok = serializers.BooleanField(allow_null=True)


class DayCountSerializer(serializers.Serializer):
    date = serializers.DateField()
    successful = serializers.IntegerField()
    failed = serializers.IntegerField()


class SeriesKpiSerializer(KpiSerializer):
    series = DayCountSerializer(many=True, help_text="Completed rollbacks per UTC day, oldest first.")


class KpisSerializer(serializers.Serializer):
    rollback_success_rate_pct = KpiSerializer()
    avg_rollback_duration_ms = KpiSerializer()
    failed_rollbacks_7d = KpiSerializer()
    rollout_velocity_days = KpiSerializer()
    rollbacks_per_day = SeriesKpiSerializer()


class RollbackStatsSerializer(serializers.Serializer):
    """The seed's rollback KPIs over completed merchant rollbacks."""

    success_rate_by_plugin = PluginRollbackStatsSerializer(many=True)
    rollbacks_last_24h = serializers.IntegerField()
    failed_rollbacks_last_7d = serializers.IntegerField()
    rollbacks_last_7d = serializers.IntegerField()
    total_rollbacks = serializers.IntegerField()
    overall_success_rate_pct = NumberField(allow_null=True)
    avg_duration_ms = serializers.IntegerField(allow_null=True)
    kpis = KpisSerializer()
