"""Filters for rollback history, shared by the API and the dashboard."""

from __future__ import annotations

import django_filters

from molam_upgrades.api.fields import BooleanQueryFilter

from .choices import RollbackTrigger
from .models import RollbackHistory


class RollbackHistoryFilterSet(django_filters.FilterSet):
    merchant_id = django_filters.UUIDFilter()
    plugin_name = django_filters.CharFilter()
    success = BooleanQueryFilter()
    trigger = django_filters.ChoiceFilter(field_name="rollback_trigger", choices=RollbackTrigger.choices)
    sira_triggered = BooleanQueryFilter()

    class Meta:
        model = RollbackHistory
        fields = ["merchant_id", "plugin_name", "success", "trigger", "sira_triggered"]
