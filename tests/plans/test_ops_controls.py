"""Ops attach a plan, hold it, skip a stage or go back one; every move audited, bad moves 409."""

from __future__ import annotations

from decimal import Decimal

import pytest

from molam_upgrades.exceptions import Conflict, NotFound, ValidationError
from molam_upgrades.models import AuditEntry
from plans import services
from plans.models import PlanTemplate, RolloutPlan
from rollouts import services as rollout_services

from .conftest import percentage_of, start_rollout

pytestmark = pytest.mark.django_db

THREE = [{"percentage": 5}, {"percentage": 25}, {"percentage": 100}]


def actions(rollout) -> list[str]:
    return list(
        AuditEntry.objects.filter(object_type="rollouts.rollout", object_id=str(rollout.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )


def test_the_seeded_templates_exist():
    names = set(PlanTemplate.objects.values_list("name", flat=True))
    assert {"Canary 5 → 25 → 50 → 100 over 4 days", "Cautious 1 → 5 → 25 → 100"} <= names
    canary = PlanTemplate.objects.get(slug="canary-5-25-50-100")
    assert [s["percentage"] for s in canary.stages] == ["5", "25", "50", "100"]
    assert sum(s["min_soak_minutes"] for s in canary.stages) == 4 * 24 * 60


def test_following_a_template_copies_its_stages_and_starts_where_the_rollout_stands():
    rollout = start_rollout(percentage="30")
    plan = services.attach_plan(rollout.pk, actor="user:olivia", template="canary-5-25-50-100")
    assert plan.template_name.startswith("Canary")
    assert [s.percentage for s in plan.stages.all()] == [5, 25, 50, 100]
    assert plan.current_stage == 1  # 25 % is the last stage at or below 30 %
    assert percentage_of(rollout) == 30
    # Editing the template later does not change the rollout's plan.
    PlanTemplate.objects.filter(slug="canary-5-25-50-100").update(stages=[{"percentage": "1"}])
    assert RolloutPlan.objects.get(pk=plan.pk).stages.count() == 4
    assert actions(rollout) == ["rollout.created", "plan.attached"]


def test_a_rollout_below_the_first_stage_is_raised_to_it_with_a_reason():
    rollout = start_rollout(percentage="0")
    services.attach_plan(rollout.pk, actor="user:olivia", template="cautious-1-5-25-100")
    assert percentage_of(rollout) == 1
    audit = AuditEntry.objects.get(action="rollout.percentage_changed", object_id=str(rollout.pk))
    assert audit.actor == "user:olivia"
    assert "start at stage 1 of 4" in audit.after["reason"]


def test_skip_moves_to_the_next_stage_now_and_back_returns_one():
    rollout = start_rollout(percentage="5")
    services.attach_plan(rollout.pk, actor="user:olivia", stages=THREE)
    services.skip_stage(rollout.pk, actor="user:olivia", reason="hotfix for a checkout bug")
    assert percentage_of(rollout) == 25
    services.back_stage(rollout.pk, actor="user:olivia", reason="tickets from Dakar")
    assert percentage_of(rollout) == 5
    plan = RolloutPlan.objects.get(rollout=rollout)
    assert plan.current_stage == 0
    reasons = [
        a.after["reason"]
        for a in AuditEntry.objects.filter(
            action="rollout.percentage_changed", object_id=str(rollout.pk)
        ).order_by("id")
    ]
    assert "skipped by user:olivia: hotfix for a checkout bug" in reasons[0]
    assert "back from stage 2 by user:olivia: tickets from Dakar" in reasons[1]
    with pytest.raises(Conflict):
        services.back_stage(rollout.pk, actor="user:olivia")


def test_skip_is_refused_for_a_paused_rollout_and_at_the_last_stage():
    rollout = start_rollout(percentage="5")
    services.attach_plan(rollout.pk, actor="user:olivia", stages=THREE)
    rollout_services.pause_rollout(rollout.pk, actor="user:olivia", reason="wait")
    with pytest.raises(Conflict, match="resume it"):
        services.skip_stage(rollout.pk, actor="user:olivia")
    assert percentage_of(rollout) == 5
    # Going back is allowed while paused: it only narrows the rollout.
    rollout_services.resume_rollout(rollout.pk, actor="user:olivia")
    services.skip_stage(rollout.pk, actor="user:olivia")
    services.skip_stage(rollout.pk, actor="user:olivia")
    with pytest.raises(Conflict, match="last stage"):
        services.skip_stage(rollout.pk, actor="user:olivia")
    assert percentage_of(rollout) == 100


def test_hold_and_release_are_audited_and_not_repeated():
    rollout = start_rollout(percentage="5")
    services.attach_plan(rollout.pk, actor="user:olivia", stages=THREE)
    plan = services.hold_plan(rollout.pk, actor="user:olivia", reason="Tabaski weekend")
    assert (plan.held, plan.held_reason, plan.held_by) == (True, "Tabaski weekend", "user:olivia")
    with pytest.raises(Conflict):
        services.hold_plan(rollout.pk, actor="user:olivia")
    services.release_plan(rollout.pk, actor="user:olivia")
    assert actions(rollout)[-2:] == ["plan.held", "plan.released"]


def test_bad_plans_change_nothing():
    rollout = start_rollout(percentage="5")
    for stages, message in (
        ([], "non-empty"),
        ([{"percentage": 25}, {"percentage": 5}], "above the previous"),
        ([{"percentage": "0.005"}], "steps of 0.01"),
        ([{"percentage": 101}], "0.01 to 100"),
        ([{"percentage": 5, "max_error_rate": 2}], "max_error_rate"),
        ([{"percentage": 5, "gate": "vibes"}], "gate"),
        ([{"percentage": 5, "surprise": 1}], "unknown field"),
        ([{"percentage": True}], "number"),
    ):
        with pytest.raises(ValidationError, match=message):
            services.attach_plan(rollout.pk, actor="user:olivia", stages=stages)
    with pytest.raises(ValidationError, match="time zone"):
        services.attach_plan(rollout.pk, actor="user:olivia", stages=THREE, timezone_name="Mars/Olympus")
    with pytest.raises(ValidationError, match="HH:MM"):
        services.attach_plan(
            rollout.pk,
            actor="user:olivia",
            stages=THREE,
            windows=[{"days": ["mon"], "start": "25:00", "end": "06:00"}],
        )
    with pytest.raises(NotFound):
        services.attach_plan(rollout.pk, actor="user:olivia", template="no-such-template")
    with pytest.raises(NotFound):
        services.attach_plan(999999, actor="user:olivia", stages=THREE)
    assert not RolloutPlan.objects.exists()
    assert actions(rollout) == ["rollout.created"]
    assert percentage_of(rollout) == Decimal("5")


def test_a_finished_rollout_cannot_take_a_plan():
    rollout = start_rollout(percentage="5")
    rollout_services.complete_rollout(rollout.pk, actor="user:olivia")
    with pytest.raises(Conflict):
        services.attach_plan(rollout.pk, actor="user:olivia", stages=THREE)


def test_create_template_validates_and_refuses_duplicates():
    template = services.create_template(
        actor="user:olivia",
        name="Slow 2 → 10 → 100",
        stages=[{"percentage": 2}, {"percentage": 10}, {"percentage": 100}],
    )
    assert template.slug == "slow-2-10-100"
    with pytest.raises(Conflict):
        services.create_template(actor="user:olivia", name="Slow 2 → 10 → 100", stages=[{"percentage": 2}])
    assert AuditEntry.objects.filter(action="plan_template.created").count() == 1
