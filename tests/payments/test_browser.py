"""In a real Chromium (Debian's package, driven by Playwright) on the live server: the rollout
detail page shows canary vs baseline, and a pay_admin approves a forced rollback."""

from __future__ import annotations

import re

import pytest

from molam_upgrades.models import AuditEntry
from rollbacks import services as rollback_services
from rollbacks.models import RollbackHistory
from tests.browser import person, screenshot, sign_in
from tests.merchants.factories import HighValueMerchantFactory

from .factories import failing_rollout

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_rollout_detail_page_shows_canary_against_baseline(page):
    from playwright.sync_api import expect

    rollout = failing_rollout()
    person("victor", "ops_viewer")

    sign_in(page, "victor", f"/ops/rollouts/{rollout.pk}")

    panel = page.locator("#canary")
    expect(panel.get_by_role("heading", name="Payments: canary vs baseline")).to_be_visible()
    expect(panel.locator("[data-verdict]")).to_have_text("Verdict: fail")
    success = panel.get_by_role("row", name=re.compile("^Success rate"))
    expect(success.locator('[data-group="canary"]')).to_contain_text(re.compile(r"^9[23]\.\d\d %$"))
    expect(success.locator('[data-group="baseline"]')).to_contain_text(re.compile(r"^9[78]\.\d\d %$"))
    expect(panel.get_by_role("row", name=re.compile("^Merchants"))).to_contain_text("30")
    expect(panel).to_contain_text("two-proportion z-test")
    screenshot(page, "rollout-detail-canary")


def test_a_pay_admin_approves_a_forced_rollback_of_a_high_value_merchant(page):
    from playwright.sync_api import expect

    merchant = HighValueMerchantFactory(name="Grand Magasin Dakar", webhook_url="", contact_email="")
    rollback = rollback_services.initiate_rollback(
        actor="user:olivia",
        merchant_id=merchant.id,
        plugin_name="woocommerce",
        from_version="4.0.0",
        to_version="3.9.0",
        trigger="operator_forced",
        reason="Checkout errors after 4.0.0",
    )
    assert rollback.approval_status == "awaiting_approval"
    person("olivia", "ops_plugins")
    person("paula", "pay_admin")

    sign_in(page, "paula", "/ops/rollback-approvals")

    row = page.locator(f"#rollback-{rollback.rollback_id}")
    expect(row).to_contain_text("Grand Magasin Dakar")
    expect(row).to_contain_text("Checkout errors after 4.0.0")
    screenshot(page, "rollback-approvals")
    row.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("approved")
    expect(page.locator(f"#decision-{rollback.rollback_id}")).to_contain_text("Approved")
    expect(page.locator(f"#decision-{rollback.rollback_id}")).to_contain_text("user:paula")

    rollback = RollbackHistory.objects.get(pk=rollback.rollback_id)
    assert (rollback.approval_status, rollback.decided_by) == ("approved", "user:paula")
    entry = AuditEntry.objects.get(action="rollback.approved")
    assert entry.actor == "user:paula" and entry.object_id == str(rollback.rollback_id)
