"""The rollout-control page and its actions: same services as the API, person as actor."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import time_machine
from django.urls import reverse
from django.utils import timezone

from molam_upgrades.models import Alert, AuditEntry
from rollouts.models import AutoCheckRun, Rollout

from .conftest import make_auto_paused_rollout, make_rollout, report_upgrades

PAGE = "/ops/rollout-control"


def card(html: str, rollout_id: int) -> str:
    """The HTML of one rollout's card."""
    start = html.index(f'id="rollout-{rollout_id}"')
    return html[start : html.index("</article>", start)]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# -- the page ------------------------------------------------------------------------------


def test_an_empty_page_says_what_to_do_next(ops, viewer):
    html = ops.get(PAGE).content.decode()
    assert "No rollout is running" in html and "5 % canary" in html
    assert "Sira has never run" in html
    assert "No rollout has finished yet" in html and "No alerts" in html
    assert "Operators start rollouts here" in viewer.get(PAGE).content.decode()


def test_each_open_rollout_shows_progress_metrics_and_targets(ops):
    rollout = make_rollout(
        "prestashop", "1.8.0", 25, rollout_strategy="geo", target_countries=["FR", "SN"], sira_monitoring=True
    )
    report_upgrades(rollout, ok=19, failed=1)
    html = card(ops.get(PAGE).content.decode(), rollout.pk)
    assert "prestashop" in html and "1.8.0" in html
    assert "25 %" in html and 'aria-valuenow="25.00"' in html and 'width="25.00%"' in html
    assert "Geographic" in html and "FR, SN" in html
    assert "<dd>19</dd>" in html  # merchants upgraded
    assert "5.00 %" in html and "3 % threshold" in html  # 1 of 20 failed: above 3 %
    assert 'class="is-bad"' in html and "(above threshold)" in html
    assert "will pause at next check" in html


def test_an_error_rate_under_the_threshold_is_not_red(ops):
    rollout = make_rollout()
    report_upgrades(rollout, ok=49, failed=1)
    html = card(ops.get(PAGE).content.decode(), rollout.pk)
    assert "2.00 %" in html and "(above threshold)" not in html and "On · healthy" in html


def test_a_rollout_paused_by_sira_shows_the_badge_and_the_reason(viewer):
    rollout = make_auto_paused_rollout()
    html = card(viewer.get(PAGE).content.decode(), rollout.pk)
    assert "Auto-paused by Sira" in html
    assert "Sira auto-pause: error rate 0.3333 &gt; threshold 0.0300" in html
    assert "badge--paused" in html


def test_recent_alerts_and_finished_rollouts_are_listed(ops):
    make_auto_paused_rollout()
    done = make_rollout("shopify", "2.2.0", 100)
    ops.submit(reverse("rollout-complete", args=[done.pk]))
    html = ops.get(PAGE).content.decode()
    finished = html[html.index("Finished rollouts") : html.index("Recent alerts")]
    assert "shopify" in finished and "Completed" in finished
    alerts = html[html.index('id="alerts-heading"') :]
    assert "Rollout auto-paused by Sira: prestashop 1.8.0" in alerts


def test_sira_last_run_is_shown_and_flagged_when_stale(ops):
    ran_at = timezone.now() - timedelta(minutes=3)
    AutoCheckRun.objects.create(source="beat", started_at=ran_at, finished_at=ran_at)
    # A run that started but never finished (crashed) does not count, as on /readyz.
    AutoCheckRun.objects.create(source="http", started_at=timezone.now() - timedelta(seconds=10))
    html = ops.get(PAGE).content.decode()
    assert "Sira last ran" in html and "3 minutes ago" in html and "check that celery beat" not in html
    with time_machine.travel(timezone.now() + timedelta(minutes=20)):
        html = ops.get(PAGE).content.decode()
    assert "23 minutes ago" in html and "sira-status--stale" in html and "check that celery beat" in html


def test_the_page_costs_a_bounded_number_of_queries(ops, django_assert_max_num_queries):
    for n in range(6):
        rollout = make_rollout(f"plugin-{n}", "1.0.0", 10)
        report_upgrades(rollout, ok=5, failed=1)
    make_auto_paused_rollout()
    ops.get(PAGE)  # warm the session
    with django_assert_max_num_queries(10):
        response = ops.get(PAGE)
    assert response.status_code == 200
    assert len(response.context["cards"]) == 7


# -- starting a rollout --------------------------------------------------------------------


def test_starting_a_rollout_calls_the_service_and_names_the_person(ops):
    response = ops.submit(
        PAGE,
        {
            "plugin_name": "woocommerce",
            "version": "4.0.0",
            "strategy": "random",
            "percentage": "5",
            "error_threshold": "0.03",
            "sira_monitoring": "on",
        },
        follow=True,
    )
    rollout = Rollout.objects.get(plugin_name="woocommerce")
    assert response.redirect_chain[-1][0] == f"{PAGE}#rollout-{rollout.pk}"
    assert messages_of(response) == ["Started the woocommerce 4.0.0 rollout at 5 %."]
    assert (rollout.rollout_percentage, rollout.status, rollout.sira_monitoring) == (5, "active", True)
    assert rollout.error_threshold == Decimal("0.03")
    assert rollout.created_by == "user:olivia"
    entry = AuditEntry.objects.get(action="rollout.created", object_id=str(rollout.pk))
    assert entry.actor == "user:olivia"


def test_a_geo_rollout_takes_countries_in_any_case_and_sira_can_be_off(ops):
    ops.submit(
        PAGE,
        {
            "plugin_name": "prestashop",
            "version": "1.8.0",
            "strategy": "geo",
            "target_countries": "us, fr SN",
            "percentage": "50",
        },
    )
    rollout = Rollout.objects.get(plugin_name="prestashop")
    assert rollout.target_countries == ["FR", "SN", "US"]
    assert rollout.rollout_strategy == "geo" and rollout.sira_monitoring is False


def test_invalid_fields_are_explained_next_to_their_inputs(ops):
    response = ops.submit(
        PAGE, {"plugin_name": "Woo Commerce", "version": "four", "strategy": "geo", "percentage": "150"}
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) >= {"plugin_name", "version", "percentage"}
    html = response.content.decode()
    assert "correct the fields marked below" in html
    assert 'id="id_plugin_name_error"' in html and 'aria-invalid="true"' in html
    assert "Ensure this value is less than or equal to 100." in html  # the API's own message
    assert not Rollout.objects.exists()


def test_the_page_and_the_api_share_one_set_of_rules(ops):
    response = ops.submit(
        PAGE, {"plugin_name": "wix", "version": "1.0.0", "strategy": "geo", "percentage": "5"}
    )
    assert response.context["form"].errors["target_countries"] == [
        "The geo strategy needs at least one target country."
    ]
    response = ops.submit(
        PAGE,
        {
            "plugin_name": "wix",
            "version": "1.0.0",
            "strategy": "random",
            "percentage": "5",
            "error_threshold": "0",
        },
    )
    assert response.context["form"].errors["error_threshold"] == [
        "Must be greater than 0 and at most 1 (e.g. 0.03 for 3 %)."
    ]
    response = ops.submit(
        PAGE, {"plugin_name": "wix", "version": "1.0.0", "strategy": "random", "percentage": ""}
    )
    assert response.context["form"].errors["percentage"] == ["This field is required."]


def test_a_second_open_rollout_for_a_plugin_is_a_message_not_a_500(ops):
    existing = make_rollout("woocommerce", "4.0.0", 5)
    response = ops.submit(
        PAGE, {"plugin_name": "woocommerce", "version": "4.1.0", "strategy": "random", "percentage": "5"}
    )
    assert response.status_code == 200
    assert "already has an active or paused rollout" in response.content.decode()
    assert list(Rollout.objects.values_list("pk", flat=True)) == [existing.pk]


# -- percentage, pause, resume, complete ---------------------------------------------------


def step(client, rollout, percentage, expected=None):
    data = {"percentage": str(percentage)}
    if expected is not None:
        data["expected"] = str(expected)
    return client.submit(reverse("rollout-percentage", args=[rollout.pk]), data, follow=True)


def test_plus_ten_raises_the_percentage_with_an_audit_entry(ops):
    rollout = make_rollout(percentage=5)
    html = card(ops.get(PAGE).content.decode(), rollout.pk)
    assert 'name="percentage" value="15.00"' in html and 'name="percentage" value="30.00"' in html
    response = step(ops, rollout, "15.00", expected="5.00")
    assert messages_of(response) == ["woocommerce 4.0.0 now reaches 15 % of merchants."]
    rollout.refresh_from_db()
    assert rollout.rollout_percentage == 15
    entry = AuditEntry.objects.get(action="rollout.percentage_changed")
    assert entry.actor == "user:olivia" and entry.after == {"rollout_percentage": "15.00"}


def test_the_step_buttons_stop_at_one_hundred(ops):
    near = make_rollout("woocommerce", percentage=85)
    full = make_rollout("shopify", percentage=100)
    html = ops.get(PAGE).content.decode()
    near_card, full_card = card(html, near.pk), card(html, full.pk)
    assert near_card.count('name="percentage" value="100.00"') == 2  # +25 % capped, and 100 %
    assert 'value="95.00"' in near_card
    assert 'name="percentage"' not in full_card  # nothing left to raise


def test_one_hundred_percent_and_complete_ask_for_confirmation(ops):
    rollout = make_rollout(percentage=50)
    html = card(ops.get(PAGE).content.decode(), rollout.pk)
    assert 'data-confirm="Roll woocommerce 4.0.0 out to 100 % of merchants?"' in html
    assert 'data-confirm="Mark woocommerce 4.0.0 as completed?' in html


def test_a_step_from_a_stale_page_changes_nothing(ops):
    rollout = make_rollout(percentage=5)
    response = step(ops, rollout, "35.00", expected="25.00")
    assert "changed to 5 % since this page was loaded" in messages_of(response)[0]
    rollout.refresh_from_db()
    assert rollout.rollout_percentage == 5


def test_an_invalid_percentage_is_refused_with_the_api_message(ops):
    rollout = make_rollout(percentage=5)
    response = step(ops, rollout, "250")
    assert messages_of(response) == ["woocommerce 4.0.0: Ensure this value is less than or equal to 100."]
    rollout.refresh_from_db()
    assert rollout.rollout_percentage == 5


def test_pause_then_resume_record_the_person_and_the_reason(ops):
    rollout = make_rollout()
    response = ops.submit(
        reverse("rollout-pause", args=[rollout.pk]), {"reason": "Checkout errors"}, follow=True
    )
    assert messages_of(response)[0].startswith("Paused woocommerce 4.0.0")
    rollout.refresh_from_db()
    assert (rollout.status, rollout.paused_reason, rollout.paused_by) == (
        "paused",
        "Checkout errors",
        "user:olivia",
    )
    assert AuditEntry.objects.get(action="rollout.paused").actor == "user:olivia"
    html = card(response.content.decode(), rollout.pk)
    assert "Resume" in html and ">Pause<" not in html

    response = ops.submit(reverse("rollout-resume", args=[rollout.pk]), follow=True)
    assert messages_of(response) == ["Resumed woocommerce 4.0.0."]
    rollout.refresh_from_db()
    assert rollout.status == "active" and rollout.paused_reason is None
    assert AuditEntry.objects.get(action="rollout.resumed").actor == "user:olivia"


def test_resuming_a_sira_pause_clears_the_badge(ops):
    rollout = make_auto_paused_rollout()
    response = ops.submit(reverse("rollout-resume", args=[rollout.pk]), follow=True)
    assert "Auto-paused by Sira" not in card(response.content.decode(), rollout.pk)


def test_pause_without_a_reason_uses_the_service_default(ops):
    rollout = make_rollout()
    ops.submit(reverse("rollout-pause", args=[rollout.pk]))
    rollout.refresh_from_db()
    assert rollout.paused_reason == "Paused by an operator"


def test_complete_moves_the_rollout_to_the_finished_list(admin):
    rollout = make_rollout()
    response = admin.submit(reverse("rollout-complete", args=[rollout.pk]), follow=True)
    assert messages_of(response) == ["Completed woocommerce 4.0.0."]
    rollout.refresh_from_db()
    assert rollout.status == "completed" and rollout.completed_at is not None
    assert AuditEntry.objects.get(action="rollout.completed").actor == "user:root"
    assert f'id="rollout-{rollout.pk}"' not in response.content.decode()


def test_moves_the_state_forbids_are_messages_not_500s(ops):
    rollout = make_rollout()
    ops.submit(reverse("rollout-complete", args=[rollout.pk]), follow=True)
    for name in ("rollout-complete", "rollout-pause", "rollout-resume"):
        response = ops.submit(reverse(name, args=[rollout.pk]), follow=True)
        assert response.status_code == 200
        assert response.redirect_chain[0][1] == 302
        assert "woocommerce 4.0.0: Rollout" in messages_of(response)[0]
    response = step(ops, rollout, "50")
    assert "its percentage can no longer change" in messages_of(response)[0]
    active = make_rollout("shopify")
    response = ops.submit(reverse("rollout-resume", args=[active.pk]), follow=True)
    assert messages_of(response) == [f"shopify 4.0.0: Rollout {active.pk} is already active."]


def test_actions_raise_no_alert_of_their_own(ops):
    rollout = make_rollout()
    ops.submit(reverse("rollout-pause", args=[rollout.pk]))
    assert not Alert.objects.exists()
