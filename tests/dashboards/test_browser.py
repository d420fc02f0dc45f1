"""The dashboards in a real Chromium (Debian's package, driven by Playwright) on the live server.

Each page's screenshot is saved under ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import re

import pytest
from django.utils import timezone

from molam_upgrades.models import AuditEntry
from rollouts.models import Rollout
from tests.browser import expect, person, screenshot, sign_in
from tests.factories import RollbackFactory

from .conftest import make_auto_paused_rollout, make_rollout

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def card_of(page, rollout: Rollout):
    return page.locator(f"#rollout-{rollout.pk}")


def test_login_page(page):
    page.goto(f"{page.base}/login/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "login")
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")


def test_an_operator_runs_the_seed_rollout_flow_from_the_browser(page):
    person("olivia", "ops_plugins")
    sign_in(page, "olivia")
    expect(page.get_by_text("No rollout is running")).to_be_visible()
    screenshot(page, "rollout-control-empty")

    # Start a 5 % canary; the strategy's targets only show for geo / tier rollouts.
    form = page.locator("#start-rollout")
    expect(form.get_by_label("Target countries")).to_be_hidden()
    form.get_by_label("Strategy").select_option("geo")
    expect(form.get_by_label("Target countries")).to_be_visible()
    form.get_by_label("Strategy").select_option("random")
    form.get_by_label("Plugin").fill("woocommerce")
    form.get_by_label("Version").fill("4.0.0")
    form.get_by_label("Percentage of merchants").fill("5")
    form.get_by_label("Error threshold").fill("0.03")
    expect(form.get_by_label("Sira monitoring")).to_be_checked()
    form.get_by_role("button", name="Start rollout").click()
    expect(page.get_by_role("status")).to_contain_text("Started the woocommerce 4.0.0 rollout at 5 %.")
    rollout = Rollout.objects.get(plugin_name="woocommerce")
    card = card_of(page, rollout)
    expect(card.locator(".rollout__pct")).to_have_text("5 %")

    # +10 % → 15 %
    card.get_by_role("button", name="+10 %").click()
    expect(page.get_by_role("status")).to_contain_text("now reaches 15 % of merchants")
    expect(card.locator(".rollout__pct")).to_have_text("15 %")
    expect(card.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "15.00")

    # Pause with a reason, then resume.
    card.get_by_label("Reason for pausing woocommerce").fill("Checkout latency")
    card.get_by_role("button", name="Pause").click()
    expect(card.locator(".badge--paused")).to_have_text("Paused")
    expect(card).to_contain_text("Checkout latency")
    screenshot(page, "rollout-control-paused")
    card.get_by_role("button", name="Resume").click()
    expect(card.locator(".badge--active")).to_have_text("Active")
    screenshot(page, "rollout-control")

    rollout.refresh_from_db()
    assert (rollout.rollout_percentage, rollout.status) == (15, "active")
    actions = list(
        AuditEntry.objects.filter(object_id=str(rollout.pk)).order_by("id").values_list("action", "actor")
    )
    assert actions == [
        ("rollout.created", "user:olivia"),
        ("rollout.percentage_changed", "user:olivia"),
        ("rollout.paused", "user:olivia"),
        ("rollout.resumed", "user:olivia"),
    ]


def test_full_rollout_and_complete_ask_first(page):
    person("olivia", "ops_plugins")
    rollout = make_rollout(percentage=50)
    sign_in(page, "olivia")
    card = card_of(page, rollout)

    page.once("dialog", lambda dialog: dialog.dismiss())
    card.get_by_role("button", name="100 %").click()
    expect(card.locator(".rollout__pct")).to_have_text("50 %")

    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="100 %").click()
    expect(card.locator(".rollout__pct")).to_have_text("100 %")
    expect(card.get_by_role("button", name="+10 %")).to_have_count(0)

    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Complete").click()
    expect(page.get_by_role("status")).to_contain_text("Completed woocommerce 4.0.0.")
    expect(page.locator("#finished-heading + ul")).to_contain_text("woocommerce")
    rollout.refresh_from_db()
    assert rollout.status == "completed"


def test_validation_errors_show_next_to_the_inputs(page):
    person("olivia", "ops_plugins")
    sign_in(page, "olivia")
    form = page.locator("#start-rollout")
    form.get_by_label("Plugin").fill("Woo Commerce")
    form.get_by_label("Percentage of merchants").fill("150")
    form.get_by_role("button", name="Start rollout").click()
    expect(form.get_by_role("alert")).to_contain_text("correct the fields marked below")
    expect(form.get_by_label("Plugin")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("#id_percentage_error")).to_contain_text("less than or equal to 100")
    expect(form.get_by_label("Plugin")).to_have_value("Woo Commerce")  # nothing typed is lost
    screenshot(page, "rollout-control-errors")


def test_a_sira_auto_pause_shows_its_badge_and_reason(page):
    person("olivia", "ops_plugins")
    rollout = make_auto_paused_rollout()
    make_rollout("woocommerce", "4.0.0", 25)
    sign_in(page, "olivia")
    card = card_of(page, rollout)
    expect(card.get_by_text("Auto-paused by Sira")).to_be_visible()
    expect(card).to_contain_text("Sira auto-pause: error rate 0.3333 > threshold 0.0300")
    expect(card.get_by_role("button", name="Resume")).to_be_visible()
    expect(page.locator("#sira-status")).to_contain_text("Sira last ran")
    expect(page.locator("#alerts-heading + ul")).to_contain_text("Rollout auto-paused by Sira")
    screenshot(page, "rollout-control-sira")


def test_a_viewer_sees_the_rollouts_but_no_buttons(page):
    person("victor", "ops_viewer")
    make_auto_paused_rollout()
    rollout = make_rollout("woocommerce", "4.0.0", 25)
    sign_in(page, "victor")
    expect(card_of(page, rollout)).to_contain_text("woocommerce")
    expect(page.locator("main button")).to_have_count(0)
    expect(page.locator("main form")).to_have_count(0)
    expect(page.get_by_text("Start a rollout")).to_have_count(0)
    expect(page.locator(".topbar")).to_contain_text("read-only")
    screenshot(page, "rollout-control-viewer")


def test_rollback_history_filters_by_plugin_and_refreshes_itself(page):
    person("victor", "ops_viewer")
    RollbackFactory.create_batch(4, plugin_name="woocommerce")
    RollbackFactory.create_batch(
        2, plugin_name="shopify", success=False, error_message="Backup checksum mismatch"
    )
    make_auto_paused_rollout()
    sign_in(page, "victor", "/ops/rollback-dashboard")
    rows = page.locator("#rollback-live tbody tr")
    expect(rows).to_have_count(7)
    expect(page.locator("tr.row--sira")).to_have_count(1)
    # Times are rewritten in the reader's time zone, as relative times.
    expect(page.locator("tr.row--sira time")).to_have_text(re.compile(r"just now|minute"))
    screenshot(page, "rollback-dashboard")

    page.get_by_label("Plugin", exact=True).select_option("shopify")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"plugin_name=shopify"))
    expect(rows).to_have_count(2)
    for plugin in rows.locator("td:nth-child(3)").all_inner_texts():
        assert plugin == "shopify"
    screenshot(page, "rollback-dashboard-filtered")

    # A new shopify rollback shows up without a reload (htmx polls every 5 s).
    RollbackFactory(plugin_name="shopify", created_at=timezone.now(), error_message="Smoke test timed out")
    expect(rows).to_have_count(3, timeout=15_000)
    expect(page.locator("#rollback-live")).to_contain_text("Smoke test timed out")

    # While the tab is hidden, the page stops asking.
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/live" in request.url else None)
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.wait_for_timeout(6_500)
    assert polls == []
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.wait_for_timeout(500)
    assert len(polls) == 1


def test_pages_are_readable_on_a_phone(browser, live_server):
    person("olivia", "ops_plugins")
    make_auto_paused_rollout()
    make_rollout("woocommerce", "4.0.0", 25)
    RollbackFactory.create_batch(5)
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    page = context.new_page()
    page.base = live_server.url
    sign_in(page, "olivia")
    # No sideways scrolling of the page itself on a narrow screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "rollout-control-phone")
    page.goto(f"{live_server.url}/ops/rollback-dashboard")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "rollback-dashboard-phone")
    context.close()


def test_keyboard_users_can_skip_to_the_content(page):
    person("olivia", "ops_plugins")
    sign_in(page, "olivia")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()


def test_the_demo_can_be_explored_with_the_documented_login(page):
    from django.core.management import call_command

    from molam_upgrades.management.commands.seed_demo import DEMO_PASSWORD

    call_command("seed_demo", stdout=open(os.devnull, "w"))
    page.goto(f"{page.base}/")
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ops/rollout-control$"))
    expect(page.locator(".badge", has_text="Auto-paused by Sira")).to_have_count(1)
    screenshot(page, "demo-rollout-control")
    page.get_by_role("link", name="Rollbacks").click()
    expect(page.locator("tr.row--sira")).to_have_count(1)
    screenshot(page, "demo-rollback-dashboard")
