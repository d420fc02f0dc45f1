"""Where a plan stands, as the API, the control page and the detail page show it (read only)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from rollouts.choices import RolloutStatus
from rollouts.models import Rollout

from .choices import GateKind
from .gates import Health, Verdict, health_of, judge
from .models import PlanStage, RolloutPlan


def pct(value: Decimal) -> str:
    """5.00 → "5", 0.50 → "0.5"."""
    return f"{Decimal(value).normalize():f}"


@dataclass
class StageRow:
    stage: PlanStage
    number: int
    state: str  # done | current | upcoming

    @property
    def percentage(self) -> str:
        return pct(self.stage.percentage)

    @property
    def soak(self) -> str:
        minutes = self.stage.min_soak_minutes
        if minutes % 1440 == 0 and minutes:
            return f"{minutes // 1440} d"
        if minutes % 60 == 0 and minutes:
            return f"{minutes // 60} h"
        return f"{minutes} min"

    def gate_text(self, rollout: Rollout) -> str:
        maximum = (
            self.stage.max_error_rate if self.stage.max_error_rate is not None else rollout.error_threshold
        )
        bound = "Wilson upper bound" if self.stage.gate == GateKind.WILSON else "error rate"
        return f"{bound} ≤ {maximum * 100:.2f} %"


@dataclass
class Progress:
    """A plan, its stages, and what the next move waits for."""

    plan: RolloutPlan
    rollout: Rollout
    stages: list[StageRow]
    health: Health
    verdict: Verdict | None
    window_open: bool
    next_opening: datetime | None
    state: str  # finished | paused | held | outside_window | waiting | ready

    @property
    def current(self) -> StageRow | None:
        return next((s for s in self.stages if s.state == "current"), None)

    @property
    def upcoming(self) -> StageRow | None:
        return next((s for s in self.stages if s.state == "upcoming"), None)

    @property
    def schedule_text(self) -> str:
        return self.plan.schedule.describe()

    @property
    def summary(self) -> str:
        """One line for a card: where it stands and what it waits for."""
        current = self.current
        where = (
            f"Stage {current.number} of {len(self.stages)} ({current.percentage} %)"
            if current
            else "No stage"
        )
        nxt = self.upcoming
        if self.state == "finished":
            return f"{where} · plan finished: complete the rollout when ready"
        if self.state == "paused":
            return f"{where} · rollout paused: the plan waits"
        if self.state == "held":
            return f"{where} · held by {self.plan.held_by or 'ops'}: {self.plan.held_reason}"
        step = f"next {nxt.percentage} %" if nxt else "last stage"
        if self.state == "outside_window":
            return f"{where} · {step} · outside its windows ({self.schedule_text})"
        if self.state == "ready":
            return f"{where} · {step} · ready: moves at the next beat"
        return f"{where} · {step} · waiting for " + "; ".join(self.verdict.waiting if self.verdict else [])

    def as_dict(self) -> dict:
        plan = self.plan
        return {
            "rollout_id": plan.rollout_id,
            "template": plan.template.slug if plan.template_id and plan.template else None,
            "template_name": plan.template_name or None,
            "state": self.state,
            "summary": self.summary,
            "current_stage": plan.current_stage + 1,
            "stage_started_at": plan.stage_started_at.isoformat(),
            "soak_started_at": plan.soak_started_at.isoformat(),
            "held": plan.held,
            "held_reason": plan.held_reason or None,
            "held_by": plan.held_by or None,
            "finished_at": plan.finished_at.isoformat() if plan.finished_at else None,
            "timezone": plan.time_zone,
            "windows": plan.windows,
            "window_open": self.window_open,
            "next_window_at": self.next_opening.isoformat() if self.next_opening else None,
            "merchants_reporting": self.health.sample,
            "merchants_failed": self.health.failures,
            "waiting_for": self.verdict.waiting if self.verdict else [],
            "stages": [
                {
                    "number": row.number,
                    "state": row.state,
                    "entered_at": row.stage.entered_at.isoformat() if row.stage.entered_at else None,
                    "left_at": row.stage.left_at.isoformat() if row.stage.left_at else None,
                    **row.stage.as_definition(),
                }
                for row in self.stages
            ],
        }


def progress_of(plan: RolloutPlan, rollout: Rollout, health: Health, now: datetime | None = None) -> Progress:
    now = now or timezone.now()
    stage_list = list(plan.stages.all())
    rows = [
        StageRow(
            stage=s,
            number=s.position + 1,
            state="done"
            if s.position < plan.current_stage
            else "current"
            if s.position == plan.current_stage
            else "upcoming",
        )
        for s in stage_list
    ]
    schedule = plan.schedule
    window_open = schedule.is_open(now)
    next_opening = None if window_open else schedule.next_opening(now)
    current = stage_list[plan.current_stage] if plan.current_stage < len(stage_list) else None
    verdict = judge(plan, current, rollout, health, now) if current is not None else None
    if plan.finished_at:
        state = "finished"
    elif rollout.status != RolloutStatus.ACTIVE:
        state = "paused"
    elif plan.held:
        state = "held"
    elif verdict is not None and verdict.ready and not window_open:
        state = "outside_window"
    elif verdict is not None and verdict.ready:
        state = "ready"
    else:
        state = "waiting"
    return Progress(plan, rollout, rows, health, verdict, window_open, next_opening, state)


def progress_for(rollouts: Iterable[Rollout], now: datetime | None = None) -> dict[int, Progress]:
    """Progress of every rollout in ``rollouts`` that follows a plan (2 queries, 3 without counts).

    Rollouts that already carry Sira's counts (``attach_error_rates``) are judged on those;
    others are counted here through the same function.
    """
    by_id = {r.pk: r for r in rollouts}
    plans = list(
        RolloutPlan.objects.filter(rollout_id__in=list(by_id))
        .select_related("template")
        .prefetch_related("stages")
    )
    if not plans:
        return {}
    missing = [p.rollout_id for p in plans if "health" not in by_id[p.rollout_id].__dict__]
    counted = health_of(missing) if missing else {}
    result = {}
    for plan in plans:
        rollout = by_id[plan.rollout_id]
        health = (
            Health(rollout.health.merchants, rollout.health.merchants_failed)
            if "health" in rollout.__dict__
            else counted.get(rollout.pk, Health(0, 0))
        )
        result[rollout.pk] = progress_of(plan, rollout, health, now)
    return result
