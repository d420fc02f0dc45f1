"""Plans in a real Chromium (Debian's package, driven by Playwright) on the live server.

- the control page updates by itself when Sira pauses a rollout (and asks nothing while hidden);
- the detail page shows the hourly timeline and the audit trail;
- the preview shows the counts before a rollout is started.

A missing browser is a failure that says what to install, never a skip.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from plans import services
from plans.seeds import SEEDED_TEMPLATES
from rollouts import services as rollout_services
from rollouts.models import Rollout
from tests.browser import person, screenshot, sign_in
from tests.factories import UpgradeLogFactory

from .conftest import report, start_rollout

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def expect():
    from playwright.sync_api import expect

    return expect


@pytest.fixture(autouse=True)
def _templates(db):
    # Transactional tests empty every table between tests, the seeded templates included.
    from plans.models import PlanTemplate

    for template in SEEDED_TEMPLATES:
        PlanTemplate.objects.get_or_create(
            slug=template["slug"], defaults={k: v for k, v in template.items() if k != "slug"}
        )


def test_the_control_page_updates_by_itself_when_sira_pauses_a_rollout(page, expect):
    person("olivia", "ops_plugins")
    rollout = start_rollout(percentage="5")
    services.attach_plan(
        rollout.pk,
        actor="user:olivia",
        stages=[{"percentage": 5, "min_soak_minutes": 60}, {"percentage": 25}],
    )
    sign_in(page, "olivia", "/ops/rollout-control")
    card = page.locator(f"#rollout-{rollout.pk}")
    expect(card.locator(".badge--active")).to_have_text("Active")
    expect(card).to_contain_text("Stage 1 of 2 (5 %)")
    page.evaluate("window.__notReloaded = true")

    # Sira pauses the rollout while the page is open; nobody touches the page.
    report(rollout, ok=7, failed=3)
    assert [p.rollout_id for p in rollout_services.auto_pause_failing_rollouts(source="command")] == [
        rollout.pk
    ]
    expect(card.get_by_text("Auto-paused by Sira")).to_be_visible(timeout=15_000)
    expect(card).to_contain_text("rollout paused: the plan waits")
    assert page.evaluate("window.__notReloaded") is True  # the cards were swapped in, not the page reloaded
    screenshot(page, "plans-rollout-control-live")

    # While the tab is hidden the page asks nothing; back in view it asks at once.
    polls: list[str] = []
    page.on(
        "request",
        lambda request: polls.append(request.url) if "/rollout-control/live" in request.url else None,
    )
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
    page.wait_for_timeout(800)
    assert len(polls) == 1
    assert page.console_errors == []


def test_the_detail_page_shows_the_timeline_and_the_trail(page, expect):
    person("victor", "ops_viewer")
    rollout = start_rollout(percentage="5")
    Rollout.objects.filter(pk=rollout.pk).update(created_at=timezone.now() - timedelta(hours=6))
    rollout.refresh_from_db()
    services.attach_plan(
        rollout.pk, actor="user:olivia", template="canary-5-25-50-100", timezone_name="Africa/Dakar"
    )
    now = timezone.now()
    report(rollout, ok=20, when=now - timedelta(hours=4))
    report(rollout, ok=9, failed=1, when=now - timedelta(hours=2))
    report(rollout, ok=1, failed=3, when=now - timedelta(minutes=5))
    rollout_services.auto_pause_failing_rollouts(source="command")

    sign_in(page, "victor", f"/ops/rollouts/{rollout.pk}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("woocommerce")
    expect(page.locator("[data-plan-summary]")).to_contain_text("Stage 1 of 4 (5 %)")
    timeline = page.locator("svg[data-timeline]")
    expect(timeline).to_be_visible()
    expect(timeline.locator(".plans-hour__bar")).to_have_count(3)
    expect(timeline.locator(".plans-hour--bad")).to_have_count(2)  # 10 % and 75 % hours, above 3 %
    expect(timeline.locator("[data-threshold]")).to_have_count(1)
    expect(timeline).to_contain_text("threshold 3.00 %")
    trail = page.locator("table[data-trail]")
    for action in ("rollout.created", "plan.attached", "rollout.auto_paused"):
        expect(trail.locator(f'tr[data-action="{action}"]')).to_have_count(1)
    expect(page.locator("[data-pauses]")).to_contain_text("Sira auto-pause: error rate")
    expect(page.locator('[data-version="4.0.0"]')).to_contain_text("30 merchants")
    expect(page.locator("main form")).to_have_count(0)  # a viewer gets no controls
    screenshot(page, "plans-rollout-detail")
    assert page.console_errors == []


def test_the_preview_shows_counts_before_starting(page, expect):
    person("olivia", "ops_plugins")
    for i in range(60):
        UpgradeLogFactory(merchant_id=uuid.UUID(int=i + 1), plugin_name="woocommerce", to_version="3.9.0")
    sign_in(page, "olivia", "/ops/rollout-control")
    form = page.locator("#start-rollout")
    form.get_by_label("Plugin").fill("woocommerce")
    form.get_by_label("Version").fill("4.0.0")
    form.get_by_label("Percentage of merchants").fill("100")
    form.get_by_role("button", name="Preview").click()
    preview = page.locator("#rollout-preview")
    expect(preview).to_contain_text("60 of 60 known merchants would be selected")
    expect(preview).to_contain_text("nothing was started")
    assert not Rollout.objects.exists()
    screenshot(page, "plans-preview")

    form.get_by_label("Percentage of merchants").fill("5")
    form.get_by_role("button", name="Preview").click()
    expect(preview.locator("[data-selected]")).not_to_have_text("60")
    form.get_by_role("button", name="Start rollout").click()
    expect(page.get_by_role("status").first).to_contain_text("Started the woocommerce 4.0.0 rollout at 5 %.")
    assert Rollout.objects.filter(plugin_name="woocommerce", rollout_percentage=5).count() == 1
    assert page.console_errors == []
