"""Hourly payment health per merchant and plugin version, and the canary verdict per rollout."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .choices import Verdict


class PaymentHealthReport(models.Model):
    """One merchant's checkout figures for one hour, tagged with the installed plugin version.

    The agent re-sends an hour while it is still filling up; the latest figures for (merchant,
    plugin, version, hour) replace the earlier ones. A merchant that upgraded within an hour
    sends that hour twice, once per version.
    """

    merchant_id = models.UUIDField()
    plugin_name = models.TextField()
    installed_version = models.TextField()
    hour = models.DateTimeField(help_text="Start of the UTC hour the figures cover.")
    attempted = models.PositiveIntegerField()
    succeeded = models.PositiveIntegerField()
    failed = models.PositiveIntegerField(help_text="Sum of failed_by_reason.")
    failed_by_reason = models.JSONField(default=dict, blank=True)
    latency_count = models.PositiveIntegerField(default=0)
    latency_p50_ms = models.FloatField(null=True, blank=True)
    latency_p95_ms = models.FloatField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "payment_health_reports"
        ordering = ["-hour"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant_id", "plugin_name", "installed_version", "hour"],
                name="payment_health_one_per_hour",
            ),
            models.CheckConstraint(
                condition=models.Q(succeeded__lte=models.F("attempted"))
                & models.Q(failed__lte=models.F("attempted") - models.F("succeeded")),
                name="payment_health_counts_consistent",
            ),
        ]
        indexes = [
            # Canary analysis: a plugin's reports over a window of hours.
            models.Index(fields=["plugin_name", "hour"], name="payment_health_plugin_hour_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.merchant_id} {self.plugin_name} {self.installed_version} @ {self.hour:%Y-%m-%d %H:00}"

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.attempted if self.attempted else None


class CanaryAnalysis(models.Model):
    """The latest canary-versus-baseline judgement of a rollout (one row per rollout).

    ``figures`` holds every number the verdict rests on (group sizes, rates, test statistics,
    p-values, margins), so the detail page, ``/metrics`` and a pause reason all show the same.
    """

    # A plain id, not a foreign key: a foreign key would take a share lock on the rollout row
    # on every write, and Sira runs (and the SQL function) lock that row to pause it.
    rollout_id = models.BigIntegerField(unique=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    success_verdict = models.CharField(max_length=16, choices=Verdict.choices)
    latency_verdict = models.CharField(max_length=16, choices=Verdict.choices)
    summary = models.TextField()
    figures = models.JSONField(default=dict)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "payment_canary_analyses"
        verbose_name_plural = "canary analyses"

    def __str__(self) -> str:
        return f"rollout {self.rollout_id}: {self.verdict}"
