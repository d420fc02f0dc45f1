"""factory-boy factories for the merchant registry."""

from __future__ import annotations

import uuid

import factory
from django.utils import timezone

from merchants.choices import NoticeKind
from merchants.models import Merchant, MerchantNotice


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    id = factory.LazyFunction(uuid.uuid4)
    name = factory.Sequence(lambda n: f"Boutique {n}")
    country = "SN"
    tier = "pro"
    high_value = False
    contact_email = factory.LazyAttribute(lambda m: f"ops+{m.id.hex[:8]}@shop.example")
    webhook_url = ""
    time_zone = "Africa/Dakar"


class HighValueMerchantFactory(MerchantFactory):
    high_value = True
    tier = "enterprise"


class MerchantNoticeFactory(factory.django.DjangoModelFactory):
    """A due webhook notice, stored without being sent (the test then delivers it)."""

    class Meta:
        model = MerchantNotice

    merchant = factory.SubFactory(MerchantFactory, contact_email="")
    kind = NoticeKind.UPGRADE_SCHEDULED
    channel = "webhook"
    dedup_key = "upgrade:woocommerce:4.0.0"
    plugin_name = "woocommerce"
    to_version = "4.0.0"
    effective_at = factory.LazyFunction(timezone.now)
    subject = "s"
    payload = factory.LazyFunction(lambda: {"id": "x"})
    deliver_after = factory.SelfAttribute("effective_at")
