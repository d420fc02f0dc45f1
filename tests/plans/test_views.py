"""Dashboard pages: the live control fragment, the preview, the rollout detail page, plan actions."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from molam_upgrades.models import AuditEntry
from plans import services
from plans.models import RolloutPlan
from rollouts import services as rollout_services
from rollouts.models import Rollout
from tests.dashboards.conftest import Browserish, login
from tests.factories import UpgradeLogFactory, UserFactory

from .conftest import report, start_rollout

pytestmark = pytest.mark.django_db

STAGES = [
    {"percentage": 5, "min_soak_minutes": 60, "min_merchants": 3},
    {"percentage": 25},
    {"percentage": 100},
]


@pytest.fixture
def ops(db) -> Browserish:
    return login(UserFactory(username="olivia", roles=["ops_plugins"]))


@pytest.fixture
def viewer(db) -> Browserish:
    return login(UserFactory(username="victor", roles=["ops_viewer"]))


@pytest.fixture
def outsider(db) -> Browserish:
    return login(UserFactory(username="otto"))


def no_inline_code(html: str) -> None:
    """The Content-Security-Policy allows no inline script, event handler or style attribute."""
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html), "inline style attribute"


# --- live control fragment --------------------------------------------------------------------


def test_the_control_page_polls_a_fragment_that_answers_204_until_something_changes(ops):
    rollout = start_rollout(percentage="5")
    page = ops.get("/ops/rollout-control")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="rollout-live"' in html and "data-poll-while-visible" in html
    # The page sends no version, so its first poll answers in full; later polls are 204s.
    first = ops.get("/ops/rollout-control/live", {"since": ""})
    assert first.status_code == 200
    since = re.search(r'data-live-version="([0-9a-f]+)"', first.content.decode())[1]
    live = ops.get("/ops/rollout-control/live", {"since": since})
    assert live.status_code == 204

    report(rollout, ok=7, failed=3)
    rollout_services.auto_pause_failing_rollouts(source="command")
    live = ops.get("/ops/rollout-control/live", {"since": since})
    assert live.status_code == 200
    fragment = live.content.decode()
    assert "Auto-paused by Sira" in fragment
    assert live["Cache-Control"] == "no-store"
    new_since = re.search(r'data-live-version="([0-9a-f]+)"', fragment)[1]
    assert new_since != since
    assert ops.get("/ops/rollout-control/live", {"since": new_since}).status_code == 204
    no_inline_code(fragment)


def test_the_fragment_shows_each_plan_and_links_to_the_detail_page(ops):
    rollout = start_rollout(percentage="5")
    services.attach_plan(rollout.pk, actor="user:olivia", stages=STAGES)
    html = ops.get("/ops/rollout-control/live").content.decode()
    assert "Stage 1 of 3 (5 %)" in html
    assert f'href="/ops/rollouts/{rollout.pk}"' in html


def test_many_rollouts_are_shown_as_a_compact_table(ops, django_assert_max_num_queries):
    for i in range(14):
        start_rollout(plugin_name=f"shop-{i}", percentage="5")
    with django_assert_max_num_queries(20):
        html = ops.get("/ops/rollout-control/live").content.decode()
    assert "plans-compact" in html and html.count('<tr id="rollout-') == 14
    cards = ops.get("/ops/rollout-control/live", {"view": "cards"}).content.decode()
    assert "plans-compact" not in cards and cards.count('<article class="card rollout') == 14


def test_a_viewer_sees_the_fragment_an_anonymous_poll_is_sent_to_log_in(viewer, outsider):
    start_rollout(percentage="5")
    assert viewer.get("/ops/rollout-control/live").status_code == 200
    assert outsider.get("/ops/rollout-control/live").status_code == 403
    anonymous = Browserish().get("/ops/rollout-control/live", HTTP_HX_REQUEST="true")
    assert anonymous.status_code == 401 and "/login/" in anonymous["HX-Redirect"]


# --- preview ----------------------------------------------------------------------------------


def test_the_preview_counts_known_merchants_and_starts_nothing(ops, viewer):
    for i in range(40):
        UpgradeLogFactory(merchant_id=uuid.UUID(int=i + 1), plugin_name="woocommerce", to_version="3.9.0")
    form = {
        "plugin_name": "woocommerce",
        "version": "4.0.0",
        "strategy": "random",
        "percentage": "100",
        "error_threshold": "0.03",
    }
    response = ops.submit("/ops/rollout-control/preview", form)
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r"<strong data-selected>40</strong> of 40 known merchants", html)
    no_inline_code(html)
    bad = ops.submit("/ops/rollout-control/preview", {**form, "percentage": "150"}).content.decode()
    assert "No preview" in bad
    assert viewer.submit("/ops/rollout-control/preview", form).status_code == 403
    assert not Rollout.objects.exists()


# --- detail page ------------------------------------------------------------------------------


def test_the_detail_page_shows_plan_timeline_versions_trail_and_pauses(ops):
    rollout = start_rollout(percentage="5")
    Rollout.objects.filter(pk=rollout.pk).update(created_at=timezone.now() - timedelta(hours=5))
    rollout.refresh_from_db()
    services.attach_plan(rollout.pk, actor="user:olivia", stages=STAGES, timezone_name="Africa/Dakar")
    now = timezone.now()
    report(rollout, ok=10, when=now - timedelta(hours=3))
    report(rollout, ok=6, failed=4, when=now - timedelta(hours=1))
    UpgradeLogFactory.create_batch(
        3, plugin_name=rollout.plugin_name, from_version="3.9.0", to_version="3.9.1"
    )
    rollout_services.auto_pause_failing_rollouts(source="command")
    response = ops.get(f"/ops/rollouts/{rollout.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    # The plan and where it stands.
    assert "Stage 1 of 3 (5 %)" in html and "rollout paused" in html
    # The hourly timeline: an hour above the threshold, the threshold line.
    assert "data-timeline" in html and "data-threshold" in html
    assert html.count('class="plans-hour plans-hour--bad"') == 1
    assert "4 of 10 failed or rolled back (40.00 %)" in html
    assert "threshold 3.00 %" in html
    # Merchants by version: 16 upgraded to 4.0.0, 4 failed ones still on 3.9.0, 3 on 3.9.1.
    for version, merchants in (("4.0.0", 16), ("3.9.0", 4), ("3.9.1", 3)):
        assert re.search(
            rf'data-version="{re.escape(version)}">\s*<div class="meter__label"><span class="mono">{re.escape(version)}</span><span>{merchants} merchants',
            html,
        ), version
    # The audit trail and the pause with Sira's reason.
    for action in ("rollout.created", "plan.attached", "rollout.auto_paused"):
        assert f'data-action="{action}"' in html
    assert "Sira auto-pause: error rate" in html
    assert "still paused" in html
    no_inline_code(html)


def test_the_detail_page_for_viewers_has_no_controls_and_unknown_rollouts_are_404(viewer, outsider):
    rollout = start_rollout(percentage="5")
    services.attach_plan(rollout.pk, actor="user:olivia", stages=STAGES)
    html = viewer.get(f"/ops/rollouts/{rollout.pk}").content.decode()
    assert "Stage 1 of 3" in html
    assert "/plan/" not in html and 'method="post" action="/ops' not in html
    assert viewer.get("/ops/rollouts/999999").status_code == 404
    assert outsider.get(f"/ops/rollouts/{rollout.pk}").status_code == 403


def test_operators_drive_the_plan_from_the_detail_page(ops, viewer):
    rollout = start_rollout(percentage="0")
    base = f"/ops/rollouts/{rollout.pk}/plan"
    response = ops.submit(
        f"{base}/attach",
        {
            "template": "cautious-1-5-25-100",
            "timezone": "Africa/Dakar",
            "days": ["sat", "sun"],
            "start": "22:00",
            "end": "06:00",
        },
    )
    assert response.status_code == 302 and response["Location"] == f"/ops/rollouts/{rollout.pk}"
    plan = RolloutPlan.objects.get(rollout=rollout)
    assert plan.windows == [{"days": ["sat", "sun"], "start": "22:00", "end": "06:00"}]
    assert ops.submit(f"{base}/hold", {"reason": "Tabaski"}).status_code == 302
    assert ops.submit(f"{base}/release").status_code == 302
    assert ops.submit(f"{base}/skip", {"reason": "hotfix"}).status_code == 302
    rollout.refresh_from_db()
    assert rollout.rollout_percentage == 5
    page = ops.get(f"/ops/rollouts/{rollout.pk}").content.decode()
    assert "Skipped to stage 2." in page
    # A refused move is a message, not an error page.
    ops.submit(f"{base}/back")
    ops.submit(f"{base}/back")
    assert "no stage before it" in ops.get(f"/ops/rollouts/{rollout.pk}").content.decode()
    # Viewers cannot, and nothing changes.
    before = AuditEntry.objects.count()
    assert viewer.submit(f"{base}/skip").status_code == 403
    assert AuditEntry.objects.count() == before
    # The form is CSRF-protected.
    forged = login(UserFactory(username="mallory", roles=["ops_plugins"]))
    assert forged.post(f"{base}/skip").status_code == 403
