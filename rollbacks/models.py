"""Upgrade reports and the immutable rollback history."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from .choices import ApprovalStatus, RollbackStatus, RollbackTrigger, UpgradeStatus

# Sira pauses are fleet-wide events, not one merchant's rollback: they are recorded in the
# rollback history under the nil merchant id.
FLEET_MERCHANT_ID = uuid.UUID(int=0)


class UpgradeLog(models.Model):
    """One upgrade attempt reported by a merchant's plugin (and the rollback that followed)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    merchant_id = models.UUIDField()
    plugin_name = models.TextField()
    from_version = models.TextField()
    to_version = models.TextField(blank=True)
    status = models.TextField(choices=UpgradeStatus.choices)
    error = models.TextField(null=True, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    rollback_version = models.TextField(null=True, blank=True)
    rollback_status = models.TextField(choices=RollbackStatus.choices, null=True, blank=True)
    rollback_triggered_at = models.DateTimeField(null=True, blank=True)
    rollback_reason = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Stamped when the report is stored: the plugin's open rollout of this version (a plain id:
    # rollouts depend on this app, not the other way round), and whether the merchant was in its
    # cohort then. NULL rollout: no open rollout of that version, the report counts nowhere.
    rollout_id = models.BigIntegerField(null=True, blank=True)
    in_cohort = models.BooleanField(null=True, blank=True)

    class Meta:
        db_table = "plugin_upgrade_logs"
        ordering = ["-created_at"]
        indexes = [
            # Reports for (plugin, version) over a time range (the plan pages' hourly timeline).
            # Error rates are read from the aggregates (aggregates.py), not through this index.
            models.Index(
                fields=["plugin_name", "to_version", "created_at"],
                include=["status", "merchant_id"],
                name="upgrade_rollout_idx",
            ),
            # "the merchant's latest upgrade log for that plugin"
            models.Index(fields=["merchant_id", "plugin_name", "-created_at"], name="upgrade_merchant_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.plugin_name} {self.from_version}→{self.to_version} {self.status}"


class RollbackHistory(models.Model):
    """A rollback, from initiation to completion. Completed rows are immutable.

    ``success`` is NULL while the rollback is in progress (initiated, not completed). On
    PostgreSQL a trigger refuses UPDATE of a completed row and any DELETE.
    """

    rollback_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    merchant_id = models.UUIDField()
    plugin_name = models.TextField()
    from_version = models.TextField()
    to_version = models.TextField()
    rollback_trigger = models.TextField(choices=RollbackTrigger.choices)
    success = models.BooleanField(null=True, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    files_restored = models.IntegerField(null=True, blank=True)
    db_restored = models.BooleanField(null=True, blank=True)
    rollback_reason = models.TextField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    sira_triggered = models.BooleanField(default=False)
    error_rate_detected = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    # The rollout Sira paused, for Sira pause records. A plain id, not a foreign key: rollouts
    # depend on this app (it owns the upgrade reports), never the other way round.
    rollout_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    initiated_by = models.CharField(max_length=160, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Four-eyes approval of an operator-forced rollback of a high-value merchant (approvals.py);
    # NULL when none is needed.
    approval_status = models.CharField(max_length=20, choices=ApprovalStatus.choices, null=True, blank=True)
    approval_expires_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    # Nullable: the SQL functions insert history rows without naming these columns.
    decided_by = models.CharField(max_length=160, null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "plugin_rollback_history"
        ordering = ["-created_at"]
        verbose_name_plural = "rollback history"
        indexes = [
            models.Index(fields=["-created_at"], name="rollback_created_idx"),
            models.Index(fields=["merchant_id", "plugin_name", "-created_at"], name="rollback_merchant_idx"),
            models.Index(fields=["plugin_name", "-created_at"], name="rollback_plugin_idx"),
            # History of a plugin's failed (or successful) rollbacks, newest first: keyset pages
            # and their count read only the matching rows.
            models.Index(
                fields=["plugin_name", "success", "-created_at", "-rollback_id"],
                name="rollback_plugin_success_idx",
            ),
            models.Index(
                fields=["merchant_id", "plugin_name"],
                condition=models.Q(completed_at__isnull=True, rollback_trigger="operator_forced"),
                name="rollback_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plugin_name} {self.from_version}→{self.to_version} ({self.rollback_trigger})"

    @property
    def is_completed(self) -> bool:
        return self.completed_at is not None

    @property
    def is_fleet_event(self) -> bool:
        """A Sira pause record, not a merchant's rollback."""
        return self.merchant_id == FLEET_MERCHANT_ID

    @property
    def status(self) -> str:
        return "completed" if self.completed_at else "in_progress"


# --- Aggregates maintained on write (see aggregates.py for the design) ------------------------


class RolloutMerchantOutcome(models.Model):
    """A cohort merchant's latest outcome in a rollout: one row per (rollout, merchant)."""

    rollout_id = models.BigIntegerField()
    merchant_id = models.UUIDField()
    status = models.TextField(choices=UpgradeStatus.choices)
    report_id = models.UUIDField(help_text="The latest report (plugin_upgrade_logs.id).")
    reported_at = models.DateTimeField()
    reports = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Reports from this merchant for this rollout."
    )
    previous_status = models.TextField(
        choices=UpgradeStatus.choices,
        null=True,
        blank=True,
        help_text="The outcome the last report replaced (null until the merchant reports twice).",
    )

    class Meta:
        db_table = "rollout_merchant_outcomes"
        constraints = [
            models.UniqueConstraint(
                fields=["rollout_id", "merchant_id"], name="rollout_merchant_outcome_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"rollout {self.rollout_id} merchant {self.merchant_id}: {self.status}"


class RolloutReportCounts(models.Model):
    """One of a rollout's counter stripes; a rollout's figures are the sums over its stripes."""

    rollout_id = models.BigIntegerField()
    stripe = models.SmallIntegerField()
    reports = models.BigIntegerField(default=0, db_default=0)
    reports_failed = models.BigIntegerField(default=0, db_default=0)
    merchants = models.BigIntegerField(default=0, db_default=0)
    merchants_failed = models.BigIntegerField(default=0, db_default=0)
    merchants_upgraded = models.BigIntegerField(default=0, db_default=0)
    reports_outside_cohort = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        db_table = "rollout_report_counts"
        verbose_name_plural = "rollout report counts"
        constraints = [
            models.UniqueConstraint(fields=["rollout_id", "stripe"], name="rollout_report_counts_uniq")
        ]

    def __str__(self) -> str:
        return f"rollout {self.rollout_id} stripe {self.stripe}"


class RollbackTotals(models.Model):
    """All-time merchant rollback figures per plugin and trigger (Sira pause records excluded)."""

    plugin_name = models.TextField()
    rollback_trigger = models.TextField(choices=RollbackTrigger.choices)
    initiated = models.BigIntegerField(default=0, db_default=0)
    completed = models.BigIntegerField(default=0, db_default=0)
    succeeded = models.BigIntegerField(default=0, db_default=0)
    failed = models.BigIntegerField(default=0, db_default=0)
    duration_count = models.BigIntegerField(default=0, db_default=0)
    duration_sum_ms = models.BigIntegerField(default=0, db_default=0)
    # The duration histogram: completed rollbacks that took at most N ms (aggregates.DURATION_BOUNDS_MS).
    duration_le_500 = models.BigIntegerField(default=0, db_default=0)
    duration_le_1000 = models.BigIntegerField(default=0, db_default=0)
    duration_le_2000 = models.BigIntegerField(default=0, db_default=0)
    duration_le_3000 = models.BigIntegerField(default=0, db_default=0)
    duration_le_5000 = models.BigIntegerField(default=0, db_default=0)
    duration_le_10000 = models.BigIntegerField(default=0, db_default=0)
    duration_le_30000 = models.BigIntegerField(default=0, db_default=0)
    duration_le_60000 = models.BigIntegerField(default=0, db_default=0)
    duration_le_120000 = models.BigIntegerField(default=0, db_default=0)
    duration_le_300000 = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        db_table = "rollback_totals"
        verbose_name_plural = "rollback totals"
        constraints = [
            models.UniqueConstraint(fields=["plugin_name", "rollback_trigger"], name="rollback_totals_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.plugin_name} {self.rollback_trigger}: {self.completed} completed"


class RollbackDaily(models.Model):
    """Completed merchant rollbacks per plugin and UTC day (of ``created_at``)."""

    plugin_name = models.TextField()
    day = models.DateField()
    completed = models.BigIntegerField(default=0, db_default=0)
    succeeded = models.BigIntegerField(default=0, db_default=0)
    failed = models.BigIntegerField(default=0, db_default=0)
    duration_count = models.BigIntegerField(default=0, db_default=0)
    duration_sum_ms = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        db_table = "rollback_daily"
        verbose_name_plural = "rollback daily figures"
        constraints = [models.UniqueConstraint(fields=["day", "plugin_name"], name="rollback_daily_uniq")]

    def __str__(self) -> str:
        return f"{self.plugin_name} {self.day}: {self.completed} completed"
