"""In a real Chromium (Debian's package, driven by Playwright) on the live server: the rollout
detail page shows canary vs baseline, and a pay_admin approves a forced rollback."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from molam_upgrades.models import AuditEntry
from rollbacks import services as rollback_services
from rollbacks.models import RollbackHistory
from rollouts import services as rollout_services
from rollouts.models import Rollout
from tests.merchants.factories import HighValueMerchantFactory

from .factories import Side, build_fleet

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "browser-pass-123"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.fail(f"Chromium is missing at {CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # the ORM runs while Playwright's loop idles
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.base = live_server.url
    yield page
    context.close()


def person(username: str, role: str) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def sign_in(page, username: str, path: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{page.base}{path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_the_rollout_detail_page_shows_canary_against_baseline(page):
    from playwright.sync_api import expect

    now = timezone.now()
    rollout = rollout_services.create_rollout(
        actor="user:setup", plugin_name="woocommerce", version="4.0.0", rollout_percentage=Decimal(50)
    )
    Rollout.objects.filter(pk=rollout.pk).update(created_at=now - timedelta(hours=30))
    build_fleet(
        plugin_name="woocommerce",
        version="4.0.0",
        percentage=50,
        canary=Side(30, 0.93),
        baseline=Side(60, 0.98),
        end=now.replace(minute=0, second=0, microsecond=0),
    )
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
