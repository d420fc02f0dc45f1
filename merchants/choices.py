"""Merchant tiers, notice kinds, channels and delivery states."""

from __future__ import annotations

from django.db import models


class NoticeKind(models.TextChoices):
    UPGRADE_SCHEDULED = "upgrade_scheduled", "Upgrade scheduled"
    FORCED_ROLLBACK = "forced_rollback", "Forced rollback"


class NoticeChannel(models.TextChoices):
    WEBHOOK = "webhook", "Signed webhook"
    EMAIL = "email", "Email"


class NoticeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Waiting to retry"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


# A worker may take a notice in these states (a claim moves it to SENDING).
CLAIMABLE_STATES = (NoticeStatus.PENDING, NoticeStatus.RETRYING)
FINAL_STATES = (NoticeStatus.DELIVERED, NoticeStatus.FAILED)


class DeliveryOutcome(models.TextChoices):
    DELIVERED = "delivered", "Delivered"
    RETRY = "retry", "Will retry"
    FAILED = "failed", "Failed for good"
