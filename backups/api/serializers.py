from __future__ import annotations

from rest_framework import serializers

from molam_upgrades.api.fields import (
    PluginNameField,
    Sha256Field,
    StrictIntegerField,
    StrictUUIDField,
    TextField,
    VersionField,
)
from molam_upgrades.api.serializers import OutputModelSerializer, envelope

from ..choices import REPORTED_STATUS_CHOICES
from ..models import PluginBackup


class BackupCreateSerializer(serializers.Serializer):
    merchant_id = StrictUUIDField()
    plugin_name = PluginNameField()
    version = VersionField()
    backup_path = TextField(max_length=4096)
    backup_size_bytes = StrictIntegerField(required=False, allow_null=True, min_value=0)
    db_snapshot_name = TextField(required=False, allow_null=True, allow_blank=True, max_length=255)
    sha256 = Sha256Field(required=False, allow_null=True)
    backup_status = serializers.ChoiceField(required=False, choices=REPORTED_STATUS_CHOICES)


class BackupUpdateSerializer(serializers.Serializer):
    backup_status = serializers.ChoiceField(required=False, choices=REPORTED_STATUS_CHOICES)
    backup_size_bytes = StrictIntegerField(required=False, allow_null=True, min_value=0)
    sha256 = Sha256Field(required=False, allow_null=True)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError(
                "Give at least one of backup_status, backup_size_bytes, sha256."
            )
        return attrs


class BackupSerializer(OutputModelSerializer):
    """A backup as the API shows it."""

    class Meta:
        model = PluginBackup
        fields = [
            "backup_id",
            "merchant_id",
            "plugin_name",
            "version",
            "backup_path",
            "db_snapshot_name",
            "backup_size_bytes",
            "sha256",
            "backup_status",
            "created_at",
            "updated_at",
            "expires_at",
        ]


BackupResponse = envelope("BackupResponse", backup=BackupSerializer())
BackupDetailResponse = envelope("BackupDetailResponse", ok=None, backup=BackupSerializer())
