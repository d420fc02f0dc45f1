"""Progressive rollouts and the release registry."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property

from molam_upgrades.sira_rules import should_pause
from rollbacks.reports import RolloutErrorRate, rollout_error_rate

from .choices import OPEN_STATES, RolloutStatus, RolloutStrategy


class Release(models.Model):
    """A downloadable plugin release: where to get it and how to verify it."""

    plugin_name = models.TextField()
    version = models.TextField()
    download_url = models.URLField(max_length=2048)
    sha256 = models.CharField(max_length=64)
    signature = models.TextField(blank=True, default="", help_text="Base64 Ed25519 signature of the package.")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=160, blank=True)

    class Meta:
        db_table = "plugin_releases"
        ordering = ["plugin_name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["plugin_name", "version"], name="release_plugin_version_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.plugin_name} {self.version}"


class Rollout(models.Model):
    """A staged rollout of one plugin version to a growing share of merchants.

    State changes go through ``rollouts.services`` (locked, audited, cache-invalidating).
    """

    plugin_name = models.TextField()
    version = models.TextField()
    rollout_percentage = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
    )
    rollout_strategy = models.TextField(choices=RolloutStrategy.choices, default=RolloutStrategy.RANDOM)
    status = models.TextField(choices=RolloutStatus.choices, default=RolloutStatus.ACTIVE)
    target_countries = models.JSONField(default=list, blank=True)
    target_tiers = models.JSONField(default=list, blank=True)
    sira_monitoring = models.BooleanField(default=True)
    error_threshold = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal("0.03"))
    min_sample_size = models.PositiveIntegerField(default=10)
    wilson_gate = models.BooleanField(
        default=False,
        help_text="Sira pauses only when the Wilson 95 % lower bound of the failure rate exceeds the threshold.",
    )
    paused_reason = models.TextField(null=True, blank=True)
    paused_by = models.CharField(max_length=160, null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    auto_paused = models.BooleanField(default=False, help_text="Paused by Sira.")
    created_by = models.CharField(max_length=160, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    full_rollout_at = models.DateTimeField(
        null=True, blank=True, help_text="When the rollout first reached 100 % (rollout velocity)."
    )
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "plugin_rollouts"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["plugin_name"],
                condition=models.Q(status__in=OPEN_STATES),
                name="one_open_rollout_per_plugin",
            ),
            models.CheckConstraint(
                condition=models.Q(rollout_percentage__gte=0, rollout_percentage__lte=100),
                name="rollout_percentage_range",
            ),
            models.CheckConstraint(
                condition=models.Q(error_threshold__gt=0, error_threshold__lte=1),
                name="rollout_threshold_range",
            ),
        ]
        indexes = [models.Index(fields=["status", "plugin_name"], name="rollout_status_idx")]

    def __str__(self) -> str:
        return f"{self.plugin_name} {self.version} @ {self.rollout_percentage}% ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    @cached_property
    def health(self) -> RolloutErrorRate:
        """Merchant counts and error rate (``rollout_error_rates``; lists fill it in one query
        with ``attach_error_rates``)."""
        return rollout_error_rate(self.pk)

    @property
    def error_rate_above_threshold(self) -> bool:
        """The rate Sira judges (the Wilson lower bound with ``wilson_gate``, else the raw rate)
        is above the threshold; whether the sample is large enough yet is another question."""
        return should_pause(
            self.health.counts,
            threshold=self.error_threshold,
            min_sample_size=0,
            wilson_gate=self.wilson_gate,
        )

    def snapshot(self) -> dict:
        """The fields an audit entry records before and after a change."""
        return {
            "plugin_name": self.plugin_name,
            "version": self.version,
            "rollout_percentage": str(self.rollout_percentage),
            "rollout_strategy": self.rollout_strategy,
            "status": self.status,
            "target_countries": list(self.target_countries or []),
            "target_tiers": list(self.target_tiers or []),
            "error_threshold": str(self.error_threshold),
            "sira_monitoring": self.sira_monitoring,
            "min_sample_size": self.min_sample_size,
            "wilson_gate": self.wilson_gate,
            "paused_reason": self.paused_reason,
        }


class AutoCheckRun(models.Model):
    """One run of the Sira auto-pause check (beat, HTTP, command or SQL)."""

    source = models.CharField(max_length=16)  # beat | http | command | sql
    actor = models.CharField(max_length=160, blank=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    checked_count = models.PositiveIntegerField(default=0)
    paused_count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "sira_auto_check_runs"
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.source} run at {self.started_at:%Y-%m-%d %H:%M} paused {self.paused_count}"
