from __future__ import annotations

import django_filters

from .choices import BackupStatus
from .models import PluginBackup


class BackupFilterSet(django_filters.FilterSet):
    merchant_id = django_filters.UUIDFilter()
    plugin_name = django_filters.CharFilter()
    version = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(field_name="backup_status", choices=BackupStatus.choices)

    class Meta:
        model = PluginBackup
        fields = ["merchant_id", "plugin_name", "version", "status"]
