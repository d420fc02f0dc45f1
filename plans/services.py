"""Plans: the one place each plan operation lives (API, dashboard, admin and beat call these).

Every change of a rollout's percentage goes through ``rollouts.services.change_rollout`` with a
reason, inside a transaction that first locks the rollout row and then *claims* the stage move
with a conditional UPDATE (``current_stage = <the stage judged>``): two beat runs, or a beat run
racing an operator's skip, move a plan once; the loser's UPDATE matches no row and it does
nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone
from django.utils.text import slugify

from molam_upgrades.exceptions import Conflict, NotFound, ValidationError
from molam_upgrades.models import AuditEntry
from rollouts import cohort
from rollouts.choices import RolloutStatus
from rollouts.models import Rollout
from rollouts.services import change_rollout

from .gates import Health, health_of, judge
from .models import PlanStage, PlanTemplate, RolloutPlan
from .schedule import Schedule, ScheduleError, normalize_windows, zone
from .stages import StageDefinition, StageError, parse_stages

logger = logging.getLogger("molam.plans")

PLAN_ACTOR = "plan"


# --- templates ------------------------------------------------------------------------------


def create_template(*, actor: str, name: str, stages, description: str = "", slug: str = "") -> PlanTemplate:
    """Save a reusable plan (409 when the name or slug is taken)."""
    definitions = _stages_or_400(stages)
    slug = slug or slugify(name)[:64]
    if not slug:
        raise ValidationError("Give a slug of letters, digits and dashes.", {"slug": ["Required."]})
    try:
        with transaction.atomic():
            template = PlanTemplate.objects.create(
                slug=slug,
                name=name,
                description=description,
                stages=[s.as_json() for s in definitions],
                created_by=actor,
            )
            AuditEntry.record(
                actor=actor,
                action="plan_template.created",
                obj=template,
                after={"name": name, "slug": slug, "stages": template.stages},
            )
    except IntegrityError as exc:
        raise Conflict(f"A plan template named {name!r} or with slug {slug!r} already exists.") from exc
    return template


def _stages_or_400(stages) -> list[StageDefinition]:
    try:
        return parse_stages(stages)
    except StageError as exc:
        raise ValidationError(str(exc), {"stages": [str(exc)]}) from exc


def template_by_key(key: str | int) -> PlanTemplate:
    query = {"pk": int(key)} if str(key).isdigit() else {"slug": str(key)}
    template = PlanTemplate.objects.filter(**query).first()
    if template is None:
        raise NotFound(f"No plan template {str(key)[:64]!r}.")
    return template


# --- attaching a plan -----------------------------------------------------------------------


def _plan_description(plan: RolloutPlan, stages: list[PlanStage]) -> dict:
    return {
        "template": plan.template_name or None,
        "stages": [s.as_definition() for s in stages],
        "current_stage": plan.current_stage + 1,
        "timezone": plan.time_zone,
        "windows": plan.windows,
    }


def attach_plan(
    rollout_id: int,
    *,
    actor: str,
    template: str | int | None = None,
    stages=None,
    timezone_name: str = "UTC",
    windows=None,
) -> RolloutPlan:
    """Make an open rollout follow a plan (a template's stages, or its own), replacing any plan.

    The rollout starts at the last stage at or below its current percentage; a rollout below the
    first stage is raised to it at once (an audited ``change_rollout``).
    """
    chosen = template_by_key(template) if template not in (None, "") else None
    if chosen is None and stages is None:
        raise ValidationError("Give a template or a list of stages.", {"template": ["Required."]})
    definitions = _stages_or_400(chosen.stages if chosen is not None and stages is None else stages)
    try:
        zone(timezone_name)
    except ScheduleError as exc:
        raise ValidationError(str(exc), {"timezone": [str(exc)]}) from exc
    try:
        clean_windows = normalize_windows(windows)
    except ScheduleError as exc:
        raise ValidationError(str(exc), {"windows": [str(exc)]}) from exc
    now = timezone.now()
    with transaction.atomic():
        rollout = _locked_rollout(rollout_id)
        if not rollout.is_open:
            raise Conflict(
                f"Rollout {rollout.pk} is {rollout.status}; only an active or paused rollout follows a plan."
            )
        before = None
        old = RolloutPlan.objects.filter(rollout=rollout).first()
        if old is not None:
            before = _plan_description(old, list(old.stages.all()))
            old.delete()
        at_or_below = [i for i, s in enumerate(definitions) if s.percentage <= rollout.rollout_percentage]
        start = at_or_below[-1] if at_or_below else 0
        plan = RolloutPlan.objects.create(
            rollout=rollout,
            template=chosen,
            template_name=chosen.name if chosen else "",
            current_stage=start,
            stage_started_at=now,
            soak_started_at=now,
            time_zone=timezone_name,
            windows=clean_windows,
            created_by=actor,
        )
        stage_rows = PlanStage.objects.bulk_create(
            [
                PlanStage(
                    plan=plan,
                    position=i,
                    percentage=s.percentage,
                    min_soak_minutes=s.min_soak_minutes,
                    min_merchants=s.min_merchants,
                    max_error_rate=s.max_error_rate,
                    gate=s.gate,
                    entered_at=now if i == start else None,
                )
                for i, s in enumerate(definitions)
            ]
        )
        AuditEntry.record(
            actor=actor,
            action="plan.attached",
            obj=rollout,
            before=before,
            after=_plan_description(plan, stage_rows),
        )
        if not at_or_below:
            change_rollout(
                rollout.pk,
                actor=actor,
                percentage=definitions[0].percentage,
                expected_percentage=rollout.rollout_percentage,
                reason=f"{_plan_label(plan)}: start at stage 1 of {len(definitions)}",
            )
        # The schedule is part of the cached decision data.
        transaction.on_commit(lambda: cohort.invalidate(rollout.plugin_name))
    return plan


def detach_plan(rollout_id: int, *, actor: str) -> None:
    """Stop following a plan: the rollout stays where it is and moves only by hand."""
    with transaction.atomic():
        rollout = _locked_rollout(rollout_id)
        plan = _plan_of(rollout)
        before = _plan_description(plan, list(plan.stages.all()))
        plan.delete()
        AuditEntry.record(actor=actor, action="plan.detached", obj=rollout, before=before)
        transaction.on_commit(lambda: cohort.invalidate(rollout.plugin_name))


def _locked_rollout(rollout_id: int) -> Rollout:
    rollout = Rollout.objects.select_for_update().filter(pk=rollout_id).first()
    if rollout is None:
        raise NotFound(f"No rollout with id {rollout_id}.")
    return rollout


def _plan_of(rollout: Rollout) -> RolloutPlan:
    plan = RolloutPlan.objects.filter(rollout=rollout).first()
    if plan is None:
        raise NotFound(f"Rollout {rollout.pk} follows no plan.")
    return plan


def _plan_label(plan: RolloutPlan) -> str:
    return f"Plan {plan.template_name!r}" if plan.template_name else "Plan"


# --- ops controls ---------------------------------------------------------------------------


def hold_plan(rollout_id: int, *, actor: str, reason: str = "") -> RolloutPlan:
    """Stop automatic progression; the rollout keeps its percentage and keeps serving."""
    return _set_hold(rollout_id, actor=actor, held=True, reason=reason or "Held by an operator")


def release_plan(rollout_id: int, *, actor: str) -> RolloutPlan:
    """Let the beat move the plan again when its stage is ready."""
    return _set_hold(rollout_id, actor=actor, held=False, reason="")


def _set_hold(rollout_id: int, *, actor: str, held: bool, reason: str) -> RolloutPlan:
    with transaction.atomic():
        rollout = _locked_rollout(rollout_id)
        plan = _plan_of(rollout)
        if plan.held == held:
            raise Conflict(f"The plan of rollout {rollout.pk} is already {'held' if held else 'running'}.")
        before = {"held": plan.held, "held_reason": plan.held_reason}
        plan.held = held
        plan.held_reason = reason if held else ""
        plan.held_by = actor if held else ""
        plan.held_at = timezone.now() if held else None
        plan.save(update_fields=["held", "held_reason", "held_by", "held_at", "updated_at"])
        AuditEntry.record(
            actor=actor,
            action="plan.held" if held else "plan.released",
            obj=rollout,
            before=before,
            after={"held": plan.held, "held_reason": plan.held_reason},
        )
    return plan


def skip_stage(rollout_id: int, *, actor: str, reason: str = "") -> RolloutPlan:
    """Move to the next stage now, without waiting for soak, sample or gate (ops' call).

    Refused for a paused rollout (resume it first) and at the last stage.
    """
    plan, rollout, stages = _plan_for_move(rollout_id)
    if rollout.status != RolloutStatus.ACTIVE:
        raise Conflict(f"Rollout {rollout.pk} is {rollout.status}; resume it before skipping a stage.")
    if plan.current_stage + 1 >= len(stages):
        raise Conflict(f"Rollout {rollout.pk} is at the last stage of its plan; nothing to skip to.")
    note = f": {reason}" if reason else ""
    moved = _move(
        plan,
        rollout,
        stages,
        plan.current_stage + 1,
        actor=actor,
        reason=f"{_plan_label(plan)}: stage {plan.current_stage + 1} skipped by {actor}{note}",
        require_active=True,
    )
    if not moved:
        raise Conflict(f"The plan of rollout {rollout.pk} moved meanwhile; check it and try again.")
    plan.refresh_from_db()
    return plan


def back_stage(rollout_id: int, *, actor: str, reason: str = "") -> RolloutPlan:
    """Go back one stage: the rollout's percentage returns to the previous stage's.

    Merchants already upgraded stay upgraded; no new merchant above the lower percentage is
    offered the version. The stage soaks again from now before the plan moves on.
    """
    plan, rollout, stages = _plan_for_move(rollout_id)
    if plan.current_stage == 0:
        raise Conflict(
            f"Rollout {rollout.pk} is at the first stage of its plan; there is no stage before it."
        )
    note = f": {reason}" if reason else ""
    moved = _move(
        plan,
        rollout,
        stages,
        plan.current_stage - 1,
        actor=actor,
        reason=f"{_plan_label(plan)}: back from stage {plan.current_stage + 1} by {actor}{note}",
        require_active=False,
    )
    if not moved:
        raise Conflict(f"The plan of rollout {rollout.pk} moved meanwhile; check it and try again.")
    plan.refresh_from_db()
    return plan


def _plan_for_move(rollout_id: int) -> tuple[RolloutPlan, Rollout, list[PlanStage]]:
    rollout = Rollout.objects.filter(pk=rollout_id).first()
    if rollout is None:
        raise NotFound(f"No rollout with id {rollout_id}.")
    plan = _plan_of(rollout)
    if not rollout.is_open:
        raise Conflict(f"Rollout {rollout.pk} is {rollout.status}; its plan can no longer move.")
    return plan, rollout, list(plan.stages.all())


def _move(
    plan: RolloutPlan,
    rollout: Rollout,
    stages: list[PlanStage],
    target: int,
    *,
    actor: str,
    reason: str,
    require_active: bool,
    only_unheld: bool = False,
    now: datetime | None = None,
) -> bool:
    """Move ``plan`` from the stage it was judged at to ``target``; False when someone else did.

    Locks the rollout, claims the move with a conditional UPDATE, then changes the percentage
    through ``change_rollout`` (one audited change, with ``reason``) — all in one transaction.
    """
    now = now or timezone.now()
    source = plan.current_stage
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().filter(pk=rollout.pk).first()
        if locked is None or not locked.is_open:
            return False
        if require_active and locked.status != RolloutStatus.ACTIVE:
            return False  # paused meanwhile (Sira or ops): a paused rollout never advances
        claim = RolloutPlan.objects.filter(pk=plan.pk, current_stage=source)
        if only_unheld:
            claim = claim.filter(held=False, finished_at__isnull=True)
        if not claim.update(
            current_stage=target, stage_started_at=now, soak_started_at=now, finished_at=None, updated_at=now
        ):
            return False
        # The stage left and the stage entered, in one statement.
        PlanStage.objects.filter(plan=plan, position__in=[source, target]).update(
            entered_at=Case(When(position=target, then=Value(now)), default=F("entered_at")),
            left_at=Case(When(position=source, then=Value(now)), default=Value(None)),
        )
        goal = stages[target].percentage
        forward = target > source
        # A forward move never lowers a percentage ops raised by hand; a move back always lands.
        if (goal > locked.rollout_percentage) if forward else (goal != locked.rollout_percentage):
            change_rollout(
                locked.pk,
                actor=actor,
                percentage=goal,
                expected_percentage=locked.rollout_percentage,
                reason=reason,
            )
        else:
            AuditEntry.record(
                actor=actor,
                action="plan.stage_changed",
                obj=locked,
                before={"stage": source + 1},
                after={"stage": target + 1, "reason": reason},
            )
    logger.info(
        "plan of rollout %s: stage %s -> %s (%s%%)",
        rollout.pk,
        source + 1,
        target + 1,
        goal,
        extra={"event": "plan_stage_changed", "rollout_id": rollout.pk, "actor": actor},
    )
    return True


# --- the beat -------------------------------------------------------------------------------


@dataclass
class AdvanceReport:
    checked: int = 0
    advanced: list[dict] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    outside_window: int = 0
    waiting: int = 0

    def as_dict(self) -> dict:
        return {
            "checked": self.checked,
            "advanced": self.advanced,
            "finished": self.finished,
            "outside_window": self.outside_window,
            "waiting": self.waiting,
        }


def advance_plans(*, now: datetime | None = None, actor: str = PLAN_ACTOR) -> AdvanceReport:
    """The beat: move every ready plan one stage (or finish it), inside its windows only.

    A plan is judged only when its rollout is active and ops do not hold it; the soak clock of a
    paused rollout restarts, so a stage soaks healthy time only. Safe to run concurrently.
    """
    now = now or timezone.now()
    report = AdvanceReport()
    RolloutPlan.objects.filter(finished_at__isnull=True, rollout__status=RolloutStatus.PAUSED).update(
        soak_started_at=now
    )
    plans = list(
        RolloutPlan.objects.filter(finished_at__isnull=True, held=False, rollout__status=RolloutStatus.ACTIVE)
        .select_related("rollout")
        .prefetch_related("stages")
        .order_by("pk")
    )
    report.checked = len(plans)
    # Soak and window first (no query): Sira's counts are read only for plans that could move.
    due = []
    for plan in plans:
        stages = list(plan.stages.all())
        if plan.current_stage >= len(stages):
            continue
        if not plan.schedule.is_open(now):
            report.outside_window += 1
        elif plan.soak_started_at + stages[plan.current_stage].min_soak > now:
            report.waiting += 1
        else:
            due.append((plan, stages))
    if not due:
        return report
    health = health_of(Rollout.objects.filter(pk__in=[plan.rollout_id for plan, _ in due]))
    for plan, stages in due:
        stage = stages[plan.current_stage]
        rollout_health = health.get(plan.rollout_id, Health(0, 0))
        verdict = judge(plan, stage, plan.rollout, rollout_health, now)
        if not verdict.ready:
            report.waiting += 1
            continue
        if plan.current_stage + 1 == len(stages):
            if _finish(plan, stage, rollout_health, now=now, actor=actor):
                report.finished.append(plan.rollout_id)
            continue
        nxt = stages[plan.current_stage + 1]
        reason = (
            f"{_plan_label(plan)}: stage {plan.current_stage + 1} of {len(stages)} "
            f"({_pct(stage.percentage)} %) passed — soaked {_hours(now - plan.soak_started_at)}, "
            f"{rollout_health.sample} merchants reporting, error rate "
            f"{rollout_health.error_rate * 100:.2f} %; opening stage {plan.current_stage + 2} ({_pct(nxt.percentage)} %)"
        )
        if _move(
            plan,
            plan.rollout,
            stages,
            plan.current_stage + 1,
            actor=actor,
            reason=reason,
            require_active=True,
            only_unheld=True,
            now=now,
        ):
            report.advanced.append(
                {
                    "rollout_id": plan.rollout_id,
                    "from_percentage": _pct(stage.percentage),
                    "to_percentage": _pct(nxt.percentage),
                    "stage": plan.current_stage + 2,
                }
            )
    return report


def _finish(plan: RolloutPlan, stage: PlanStage, health: Health, *, now: datetime, actor: str) -> bool:
    """The last stage soaked healthy: the plan is done. The rollout stays active for ops to
    complete (completing it would stop offering the version to merchants not yet upgraded)."""
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().filter(pk=plan.rollout_id).first()
        if locked is None or locked.status != RolloutStatus.ACTIVE:
            return False
        if not RolloutPlan.objects.filter(
            pk=plan.pk, current_stage=plan.current_stage, held=False, finished_at__isnull=True
        ).update(finished_at=now, updated_at=now):
            return False
        AuditEntry.record(
            actor=actor,
            action="plan.finished",
            obj=locked,
            after={
                "stage": plan.current_stage + 1,
                "percentage": _pct(stage.percentage),
                "reason": f"{_plan_label(plan)}: last stage soaked {_hours(now - plan.soak_started_at)} with "
                f"{health.sample} merchants reporting, error rate {health.error_rate * 100:.2f} %",
            },
        )
    return True


def _pct(value: Decimal) -> str:
    return f"{Decimal(value).normalize():f}"


def _hours(delta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


# --- decisions ------------------------------------------------------------------------------


def schedule_for_decisions(rollout_id: int) -> Schedule | None:
    """The windows a rollout's decisions obey, for the cached decision data (one query on a miss).

    Registered with ``rollouts.cohort.register_gate_loader``; None when the rollout has no plan
    or its plan has no windows (always open).
    """
    row = RolloutPlan.objects.filter(rollout_id=rollout_id).values_list("time_zone", "windows").first()
    if row is None or not row[1]:
        return None
    return Schedule.from_stored(*row)
