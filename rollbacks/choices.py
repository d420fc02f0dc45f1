from __future__ import annotations

from django.db import models


class UpgradeStatus(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"


# Upgrade outcomes that count as errors in a rollout's error rate.
ERROR_STATUSES = (UpgradeStatus.FAILED, UpgradeStatus.ROLLED_BACK)


class RollbackStatus(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    NOT_REQUIRED = "not_required", "Not required"


class RollbackEventStatus(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"


class RollbackTrigger(models.TextChoices):
    AUTOMATIC = "automatic", "Automatic"
    MANUAL = "manual", "Manual"
    OPERATOR_FORCED = "operator_forced", "Operator forced"


class RollbackProgress(models.TextChoices):
    """The API's ``status`` of a rollback: open until the agent reports completion."""

    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"


class ApprovalStatus(models.TextChoices):
    """Four-eyes state of an operator-forced rollback of a high-value merchant (``approvals.py``)."""

    AWAITING = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


# Refused or lapsed: never handed to an agent, and no longer blocking a new forced rollback.
CLOSED_APPROVAL_STATES = (ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED)
