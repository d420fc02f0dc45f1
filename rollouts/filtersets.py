from __future__ import annotations

import django_filters

from .choices import RolloutStatus, RolloutStrategy
from .models import Release, Rollout


class RolloutFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RolloutStatus.choices)
    plugin_name = django_filters.CharFilter()
    strategy = django_filters.ChoiceFilter(field_name="rollout_strategy", choices=RolloutStrategy.choices)

    class Meta:
        model = Rollout
        fields = ["status", "plugin_name", "strategy"]


class ReleaseFilterSet(django_filters.FilterSet):
    plugin_name = django_filters.CharFilter()
    version = django_filters.CharFilter()

    class Meta:
        model = Release
        fields = ["plugin_name", "version"]
