"""Staged rollout plans: reusable templates, a rollout's plan and its stages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from .choices import GateKind
from .schedule import Schedule

PERCENT_VALIDATORS = [MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("100"))]


class PlanTemplate(models.Model):
    """A reusable list of stages ("Canary 5 → 25 → 50 → 100 over 4 days").

    ``stages`` holds the stage definitions as validated JSON (``plans.stages``); a rollout that
    follows a template copies them into its own :class:`PlanStage` rows, so editing or removing
    a template never changes a rollout already under way.
    """

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    stages = models.JSONField()
    created_by = models.CharField(max_length=160, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "rollout_plan_templates"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RolloutPlan(models.Model):
    """The plan a rollout follows: where it stands, whether ops hold it, and when it may move.

    Only ``plans.services`` changes a plan; every change of the rollout's percentage goes through
    ``rollouts.services.change_rollout`` with a reason.
    """

    rollout = models.OneToOneField("rollouts.Rollout", on_delete=models.CASCADE, related_name="plan")
    template = models.ForeignKey(PlanTemplate, null=True, blank=True, on_delete=models.SET_NULL)
    template_name = models.CharField(max_length=120, blank=True)
    current_stage = models.PositiveSmallIntegerField(default=0)
    stage_started_at = models.DateTimeField(default=timezone.now)
    # The soak clock: restarted while the rollout is paused, so a stage soaks healthy time only.
    soak_started_at = models.DateTimeField(default=timezone.now)
    held = models.BooleanField(default=False, help_text="Ops hold: no automatic progression.")
    held_reason = models.TextField(blank=True)
    held_by = models.CharField(max_length=160, blank=True)
    held_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="Last stage soaked and healthy.")
    time_zone = models.CharField(max_length=64, default="UTC", help_text="IANA name, e.g. Africa/Dakar.")
    windows = models.JSONField(default=list, blank=True)
    created_by = models.CharField(max_length=160, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "rollout_plans"
        indexes = [
            models.Index(
                fields=["rollout"],
                condition=models.Q(finished_at__isnull=True, held=False),
                name="plan_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"plan of rollout {self.rollout_id} at stage {self.current_stage + 1}"

    @property
    def schedule(self) -> Schedule:
        return Schedule.from_stored(self.time_zone, self.windows or [])


class PlanStage(models.Model):
    """One stage: a percentage, how long it soaks, how many merchants must report, its gate."""

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="stages")
    position = models.PositiveSmallIntegerField()
    percentage = models.DecimalField(max_digits=5, decimal_places=2, validators=PERCENT_VALIDATORS)
    min_soak_minutes = models.PositiveIntegerField(default=0)
    min_merchants = models.PositiveIntegerField(default=0)
    # None: the rollout's own error_threshold (the one Sira pauses on).
    max_error_rate = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    gate = models.CharField(max_length=16, choices=GateKind.choices, default=GateKind.RATE)
    entered_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "rollout_plan_stages"
        ordering = ["plan", "position"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "position"], name="plan_stage_position_uniq"),
            models.CheckConstraint(
                condition=models.Q(percentage__gt=0, percentage__lte=100), name="plan_stage_percentage_range"
            ),
        ]

    def __str__(self) -> str:
        return f"stage {self.position + 1}: {self.percentage}%"

    @property
    def min_soak(self) -> timedelta:
        return timedelta(minutes=self.min_soak_minutes)

    def as_definition(self) -> dict:
        return {
            "percentage": f"{self.percentage.normalize():f}",
            "min_soak_minutes": self.min_soak_minutes,
            "min_merchants": self.min_merchants,
            "max_error_rate": None if self.max_error_rate is None else f"{self.max_error_rate.normalize():f}",
            "gate": self.gate,
        }
