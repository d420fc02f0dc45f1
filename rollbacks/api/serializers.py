"""Request validation and response shapes for the 115bis endpoints (seed JSON keys)."""

from __future__ import annotations

from rest_framework import serializers

from molam_upgrades.api.fields import (
    PluginNameField,
    ReasonField,
    StrictBooleanField,
    StrictIntegerField,
    StrictUUIDField,
    VersionField,
)

from ..choices import RollbackEventStatus, RollbackTrigger, UpgradeStatus
from ..models import RollbackHistory, UpgradeLog

MAX_DURATION_MS = 24 * 3600 * 1000


class UpgradeReportSerializer(serializers.Serializer):
    merchant_id = StrictUUIDField()
    plugin_name = PluginNameField()
    from_version = VersionField()
    to_version = VersionField()
    status = serializers.ChoiceField(choices=UpgradeStatus.choices)
    error = ReasonField(required=False, allow_blank=True, allow_null=True, max_length=10000)
    duration_ms = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=MAX_DURATION_MS)


class RollbackEventSerializer(serializers.Serializer):
    merchant_id = StrictUUIDField()
    plugin_name = PluginNameField()
    rollback_version = VersionField()
    status = serializers.ChoiceField(choices=RollbackEventStatus.choices)
    reason = ReasonField(allow_blank=True)
    from_version = VersionField(required=False)
    to_version = VersionField(required=False)


class RollbackInitiateSerializer(serializers.Serializer):
    merchant_id = StrictUUIDField()
    plugin_name = PluginNameField()
    from_version = VersionField()
    to_version = VersionField()
    trigger = serializers.ChoiceField(choices=RollbackTrigger.choices)
    reason = ReasonField(allow_blank=True)


class RollbackCompleteSerializer(serializers.Serializer):
    success = StrictBooleanField()
    duration_ms = StrictIntegerField(min_value=0, max_value=MAX_DURATION_MS)
    files_restored = StrictIntegerField(min_value=0, max_value=10_000_000)
    db_restored = StrictBooleanField()
    error_message = ReasonField(required=False, allow_blank=True, allow_null=True, max_length=10000)


class PendingQuerySerializer(serializers.Serializer):
    merchant_id = StrictUUIDField(required=False)
    plugin_name = PluginNameField(required=False)


def upgrade_log_data(log: UpgradeLog) -> dict:
    return {
        "id": str(log.id),
        "merchant_id": str(log.merchant_id),
        "plugin_name": log.plugin_name,
        "from_version": log.from_version,
        "to_version": log.to_version,
        "status": log.status,
        "error": log.error,
        "duration_ms": log.duration_ms,
        "rollback_version": log.rollback_version,
        "rollback_status": log.rollback_status,
        "rollback_triggered_at": log.rollback_triggered_at.isoformat() if log.rollback_triggered_at else None,
        "rollback_reason": log.rollback_reason,
        "created_at": log.created_at.isoformat(),
    }


def rollback_data(rollback: RollbackHistory) -> dict:
    return {
        "rollback_id": str(rollback.rollback_id),
        "merchant_id": str(rollback.merchant_id),
        "plugin_name": rollback.plugin_name,
        "from_version": rollback.from_version,
        "to_version": rollback.to_version,
        "rollback_trigger": rollback.rollback_trigger,
        "success": rollback.success,
        "duration_ms": rollback.duration_ms,
        "files_restored": rollback.files_restored,
        "db_restored": rollback.db_restored,
        "reason": rollback.rollback_reason,
        "error_message": rollback.error_message,
        "sira_triggered": rollback.sira_triggered,
        "error_rate_detected": float(rollback.error_rate_detected)
        if rollback.error_rate_detected is not None
        else None,
        "rollout_id": rollback.rollout_id,
        "initiated_by": rollback.initiated_by,
        "status": "completed" if rollback.completed_at else "in_progress",
        "created_at": rollback.created_at.isoformat(),
        "completed_at": rollback.completed_at.isoformat() if rollback.completed_at else None,
    }
