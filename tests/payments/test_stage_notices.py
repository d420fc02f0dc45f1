"""Upgrade notices when a stage selects a registered merchant: once per version, not to shops already there."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from merchants.models import MerchantNotice
from payments import notices, tasks
from rollouts import cohort
from rollouts import services as rollout_services
from tests.merchants.factories import MerchantFactory

from .factories import PaymentHealthReportFactory

pytestmark = pytest.mark.django_db(transaction=True)


def selected(rollout, merchant) -> bool:
    return cohort.in_cohort(
        cohort.OpenRollout.from_model(rollout, None), merchant.id, merchant.country, merchant.tier
    )[0]


def test_merchants_a_stage_selects_are_told_once_and_the_others_not_at_all(mailoutbox):
    merchants = MerchantFactory.create_batch(40, webhook_url="")
    rollout = rollout_services.create_rollout(
        actor="user:olivia", plugin_name="woocommerce", version="4.0.0", rollout_percentage=Decimal(25)
    )
    chosen = {m.id for m in merchants if selected(rollout, m)}
    assert 0 < len(chosen) < 40

    assert tasks.notify_selected_merchants() == len(chosen)

    told = set(MerchantNotice.objects.values_list("merchant_id", flat=True))
    assert told == chosen
    assert len(mailoutbox) == len(chosen)
    assert all("to 4.0.0" in m.subject for m in mailoutbox)
    # The next beat run (and the one after) tells nobody again.
    assert tasks.notify_selected_merchants() == 0
    # Raising the percentage tells the newly selected merchants only.
    rollout_services.change_rollout(rollout.pk, actor="user:olivia", percentage=Decimal(60))
    rollout.refresh_from_db()
    now_chosen = {m.id for m in merchants if selected(rollout, m)}
    assert tasks.notify_selected_merchants() == len(now_chosen - chosen)
    assert set(MerchantNotice.objects.values_list("merchant_id", flat=True)) == now_chosen


def test_geo_targets_and_shops_already_on_the_version_are_respected(mailoutbox):
    in_sn = MerchantFactory.create_batch(10, country="SN", webhook_url="")
    MerchantFactory.create_batch(10, country="CI", webhook_url="")
    rollout = rollout_services.create_rollout(
        actor="user:olivia",
        plugin_name="woocommerce",
        version="4.0.0",
        rollout_percentage=Decimal(100),
        rollout_strategy="geo",
        target_countries=["SN"],
    )
    PaymentHealthReportFactory(
        merchant_id=in_sn[0].id,
        installed_version="4.0.0",
        hour=timezone.now().replace(minute=0) - timedelta(hours=1),
    )
    PaymentHealthReportFactory(
        merchant_id=in_sn[1].id,
        installed_version="3.9.0",
        hour=timezone.now().replace(minute=0) - timedelta(hours=1),
    )
    assert notices.notify_rollout(rollout) == 9
    notice = MerchantNotice.objects.get(merchant_id=in_sn[1].id)
    assert notice.from_version == "3.9.0" and "from 3.9.0 to 4.0.0" in notice.payload["message"]
    assert not MerchantNotice.objects.filter(merchant_id=in_sn[0].id).exists()


def test_a_paused_rollout_tells_nobody(mailoutbox):
    MerchantFactory.create_batch(5, webhook_url="")
    rollout = rollout_services.create_rollout(
        actor="user:olivia", plugin_name="woocommerce", version="4.0.0", rollout_percentage=Decimal(100)
    )
    rollout_services.pause_rollout(rollout.pk, actor="user:olivia", reason="hold")
    assert tasks.notify_selected_merchants() == 0 and mailoutbox == []
