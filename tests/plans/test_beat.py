"""The beat moves a plan only when soak, sample and gate hold, inside its windows, never paused."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from molam_upgrades.models import AuditEntry
from plans import services
from plans.gates import health_of, wilson_upper
from plans.models import RolloutPlan
from plans.tasks import advance_plans as advance_plans_task
from rollouts import services as rollout_services
from rollouts.metrics import rollout_error_rates
from rollouts.models import Rollout

from .conftest import HOURLY, percentage_of, report, start_rollout

pytestmark = pytest.mark.django_db


def percentage_audits(rollout):
    return list(
        AuditEntry.objects.filter(
            object_type="rollouts.rollout", object_id=str(rollout.pk), action="rollout.percentage_changed"
        ).order_by("id")
    )


def test_a_plan_advances_through_its_stages_only_when_soak_sample_and_gate_hold(clock):
    rollout = start_rollout(percentage="5")
    services.attach_plan(rollout.pk, actor="user:olivia", stages=HOURLY)

    # Healthy sample, but the stage has not soaked its hour.
    report(rollout, ok=3)
    clock.shift(timedelta(minutes=59))
    assert services.advance_plans().advanced == []
    assert percentage_of(rollout) == 5

    # Soaked: 5 % → 25 %, one audited change_rollout with the reason.
    clock.shift(timedelta(minutes=1))
    result = services.advance_plans()
    assert [a["to_percentage"] for a in result.advanced] == ["25"]
    assert percentage_of(rollout) == 25
    (audit,) = percentage_audits(rollout)
    assert audit.actor == "plan"
    assert audit.before == {"rollout_percentage": "5.00"}
    assert audit.after["rollout_percentage"] == "25.00"
    assert "stage 1 of 3" in audit.after["reason"] and "opening stage 2 (25 %)" in audit.after["reason"]

    # Stage 2 soaks from its own start, and needs 6 merchants reporting.
    clock.shift(timedelta(hours=2))
    assert services.advance_plans().waiting == 1
    assert percentage_of(rollout) == 25

    # Enough merchants, but the gate fails: 1 failed of 7 is 14 % > the 3 % threshold.
    report(rollout, ok=3, failed=1)
    assert services.advance_plans().advanced == []
    assert percentage_of(rollout) == 25

    # The failures are diluted below the threshold: 1 of 40 is 2.5 %.
    report(rollout, ok=33)
    assert [a["to_percentage"] for a in services.advance_plans().advanced] == ["100"]
    assert percentage_of(rollout) == 100

    # The last stage soaks, then the plan is done; the rollout stays active for ops to complete.
    clock.shift(timedelta(minutes=30))
    assert services.advance_plans().finished == []
    clock.shift(timedelta(minutes=30))
    assert services.advance_plans().finished == [rollout.pk]
    plan = RolloutPlan.objects.get(rollout=rollout)
    assert plan.finished_at is not None and plan.current_stage == 2
    rollout.refresh_from_db()
    assert rollout.status == "active"
    assert len(percentage_audits(rollout)) == 2
    assert AuditEntry.objects.filter(action="plan.finished", object_id=str(rollout.pk)).count() == 1
    # Nothing more to do.
    clock.shift(timedelta(days=3))
    assert services.advance_plans().checked == 0


def test_a_plan_never_advances_outside_its_window(clock):
    # Monday 10:00 in Dakar; the window is the night 22:00–06:00.
    rollout = start_rollout(percentage="5")
    services.attach_plan(
        rollout.pk,
        actor="user:olivia",
        stages=HOURLY,
        timezone_name="Africa/Dakar",
        windows=[
            {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "22:00", "end": "06:00"}
        ],
    )
    report(rollout, ok=10)
    for _ in range(11):  # every hour from 11:00 to 21:00, ready but outside the window
        clock.shift(timedelta(hours=1))
        result = services.advance_plans()
        assert result.advanced == [] and result.outside_window == 1
    assert percentage_of(rollout) == 5
    clock.shift(timedelta(hours=1))  # 22:00: the window opens
    assert [a["to_percentage"] for a in services.advance_plans().advanced] == ["25"]
    assert percentage_of(rollout) == 25


def test_a_paused_rollout_never_advances_and_its_soak_restarts(clock):
    rollout = start_rollout(percentage="5")
    services.attach_plan(rollout.pk, actor="user:olivia", stages=HOURLY)
    report(rollout, ok=10)
    rollout_services.pause_rollout(rollout.pk, actor="user:olivia", reason="checking a merchant ticket")
    for _ in range(6):
        clock.shift(timedelta(hours=1))
        assert services.advance_plans().checked == 0
    assert percentage_of(rollout) == 5

    rollout_services.resume_rollout(rollout.pk, actor="user:olivia")
    clock.shift(timedelta(minutes=30))
    assert services.advance_plans().advanced == []  # soaked 30 min since the pause, not 6 h
    clock.shift(timedelta(minutes=31))
    assert [a["to_percentage"] for a in services.advance_plans().advanced] == ["25"]


def test_a_rollout_sira_paused_is_never_advanced(clock):
    rollout = start_rollout(percentage="5", min_sample_size=10)
    services.attach_plan(rollout.pk, actor="user:olivia", stages=[{"percentage": 5}, {"percentage": 50}])
    report(rollout, ok=7, failed=3)
    assert [p.rollout_id for p in rollout_services.auto_pause_failing_rollouts(source="command")] == [
        rollout.pk
    ]
    clock.shift(timedelta(days=2))
    report(rollout, ok=500)  # healthy again: still paused, still not advanced
    assert services.advance_plans().checked == 0
    rollout.refresh_from_db()
    assert (rollout.status, rollout.rollout_percentage) == ("paused", 5)


def test_a_held_plan_does_not_advance_until_released(clock):
    rollout = start_rollout(percentage="5")
    services.attach_plan(rollout.pk, actor="user:olivia", stages=HOURLY)
    report(rollout, ok=10)
    services.hold_plan(rollout.pk, actor="user:olivia", reason="Black Friday")
    clock.shift(timedelta(hours=3))
    assert services.advance_plans().checked == 0
    assert percentage_of(rollout) == 5
    services.release_plan(rollout.pk, actor="user:olivia")
    assert [a["to_percentage"] for a in services.advance_plans().advanced] == ["25"]


def test_fractional_stages_down_to_a_hundredth_of_a_percent(clock):
    rollout = start_rollout(percentage="0")
    services.attach_plan(
        rollout.pk,
        actor="user:olivia",
        stages=[{"percentage": 0.01}, {"percentage": 0.5}, {"percentage": "2.25"}],
    )
    assert percentage_of(rollout) == Decimal("0.01")  # raised to the first stage at once
    services.advance_plans()
    assert percentage_of(rollout) == Decimal("0.50")
    services.advance_plans()
    assert percentage_of(rollout) == Decimal("2.25")


def test_a_stage_gate_reads_the_same_merchant_counts_sira_uses(clock):
    rollout = start_rollout(percentage="5")
    report(rollout, ok=6, failed=2)
    # Reports Sira does not count for this rollout: another version, and before it started.
    report(rollout, failed=5, when=rollout.created_at - timedelta(days=1))
    other = start_rollout(plugin_name="prestashop", version="1.8.0")
    report(other, failed=4)

    sira = {
        pk: (rate.merchants, rate.merchants_failed)
        for pk, rate in rollout_error_rates(Rollout.objects.values_list("pk", flat=True)).items()
    }
    gates = {pk: (h.sample, h.failures) for pk, h in health_of(Rollout.objects.all()).items()}
    assert gates == sira
    assert gates[rollout.pk] == (8, 2)

    # And the gate acts on them: 2 of 8 (25 %) is above the 3 % threshold.
    services.attach_plan(rollout.pk, actor="user:olivia", stages=[{"percentage": 5}, {"percentage": 25}])
    assert services.advance_plans().waiting == 1


def test_the_wilson_gate_waits_for_confidence(clock):
    rollout = start_rollout(percentage="5")
    services.attach_plan(
        rollout.pk, actor="user:olivia", stages=[{"percentage": 5, "gate": "wilson"}, {"percentage": 25}]
    )
    report(rollout, ok=40)  # 0 of 40: the rate is 0 but the upper bound is 8.8 % > 3 %
    assert wilson_upper(0, 40) > 0.03
    assert services.advance_plans().waiting == 1
    report(rollout, ok=120)  # 0 of 160: upper bound 2.3 %
    assert services.advance_plans().advanced != []
    assert percentage_of(rollout) == 25


def test_a_hand_raised_percentage_is_never_lowered_by_an_advance(clock):
    rollout = start_rollout(percentage="5")
    services.attach_plan(
        rollout.pk, actor="user:olivia", stages=[{"percentage": 5}, {"percentage": 25}, {"percentage": 50}]
    )
    rollout_services.change_rollout(rollout.pk, actor="user:olivia", percentage=Decimal("30"))
    services.advance_plans()  # stage 2 (25 %) is below the 30 % ops chose: the plan moves, the rollout stays
    assert percentage_of(rollout) == 30
    assert RolloutPlan.objects.get(rollout=rollout).current_stage == 1
    assert AuditEntry.objects.filter(action="plan.stage_changed", object_id=str(rollout.pk)).count() == 1
    services.advance_plans()
    assert percentage_of(rollout) == 50


def test_the_celery_task_runs_the_beat(clock):
    rollout = start_rollout(percentage="5")
    services.attach_plan(rollout.pk, actor="user:olivia", stages=[{"percentage": 5}, {"percentage": 10}])
    result = advance_plans_task.delay().get()
    assert result["advanced"] == [
        {"rollout_id": rollout.pk, "from_percentage": "5", "to_percentage": "10", "stage": 2}
    ]
