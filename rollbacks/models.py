"""Upgrade reports and the immutable rollback history."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from .choices import RollbackStatus, RollbackTrigger, UpgradeStatus

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

    class Meta:
        db_table = "plugin_upgrade_logs"
        ordering = ["-created_at"]
        indexes = [
            # Error rate of a rollout: reports for (plugin, version) since it was created.
            # Covering (status, merchant_id included) so error rates are index-only scans on PostgreSQL.
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

    class Meta:
        db_table = "plugin_rollback_history"
        ordering = ["-created_at"]
        verbose_name_plural = "rollback history"
        indexes = [
            models.Index(fields=["-created_at"], name="rollback_created_idx"),
            models.Index(fields=["merchant_id", "plugin_name", "-created_at"], name="rollback_merchant_idx"),
            models.Index(fields=["plugin_name", "-created_at"], name="rollback_plugin_idx"),
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
