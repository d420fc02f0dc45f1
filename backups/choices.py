from __future__ import annotations

from django.db import models


class BackupStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


# A backup in a final state can no longer be changed through the API.
FINAL_STATES = frozenset({BackupStatus.FAILED, BackupStatus.EXPIRED})

# What the agent may report (``expired`` is set by retention only).
REPORTED_STATUS_CHOICES = [
    (s.value, s.label) for s in (BackupStatus.PENDING, BackupStatus.COMPLETED, BackupStatus.FAILED)
]
