"""Filters for payment health reports and canary analyses (API)."""

from __future__ import annotations

import django_filters

from molam_upgrades.api.fields import UtcIsoDateTimeFilter

from .choices import Verdict
from .models import CanaryAnalysis, PaymentHealthReport


class PaymentHealthFilterSet(django_filters.FilterSet):
    merchant_id = django_filters.UUIDFilter()
    plugin_name = django_filters.CharFilter()
    installed_version = django_filters.CharFilter()
    since = UtcIsoDateTimeFilter(field_name="hour", lookup_expr="gte")

    class Meta:
        model = PaymentHealthReport
        fields = ["merchant_id", "plugin_name", "installed_version", "since"]


class CanaryAnalysisFilterSet(django_filters.FilterSet):
    verdict = django_filters.ChoiceFilter(choices=Verdict.choices)

    class Meta:
        model = CanaryAnalysis
        fields = ["verdict"]
