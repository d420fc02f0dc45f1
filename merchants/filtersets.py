"""Filters for the merchant registry and notices (API)."""

from __future__ import annotations

import django_filters

from molam_upgrades.api.fields import BooleanQueryFilter

from .choices import NoticeChannel, NoticeKind, NoticeStatus
from .models import Merchant, MerchantNotice


class MerchantFilterSet(django_filters.FilterSet):
    country = django_filters.CharFilter()
    tier = django_filters.CharFilter()
    high_value = BooleanQueryFilter()

    class Meta:
        model = Merchant
        fields = ["country", "tier", "high_value"]


class NoticeFilterSet(django_filters.FilterSet):
    merchant_id = django_filters.UUIDFilter()
    kind = django_filters.ChoiceFilter(choices=NoticeKind.choices)
    channel = django_filters.ChoiceFilter(choices=NoticeChannel.choices)
    status = django_filters.ChoiceFilter(choices=NoticeStatus.choices)

    class Meta:
        model = MerchantNotice
        fields = ["merchant_id", "kind", "channel", "status"]
