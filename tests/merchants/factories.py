"""factory-boy factories for the merchant registry."""

from __future__ import annotations

import uuid

import factory

from merchants.models import Merchant


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
