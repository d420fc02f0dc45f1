"""The merchant registry and the notices sent to merchants before a change."""

from __future__ import annotations

import secrets
import uuid
import zoneinfo
from datetime import datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .choices import DeliveryOutcome, NoticeChannel, NoticeKind, NoticeStatus


def new_webhook_secret() -> str:
    return secrets.token_hex(32)


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not a known time zone (e.g. Africa/Dakar).") from exc


class Merchant(models.Model):
    """A merchant the control plane knows by name: who to tell, and how careful to be.

    ``id`` is the ``merchant_id`` every API call carries. ``high_value`` merchants need a
    second person's approval before an operator-forced rollback reaches them.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=200)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2, upper case.")
    tier = models.CharField(max_length=32, blank=True)
    high_value = models.BooleanField(default=False)
    contact_email = models.EmailField(blank=True)
    webhook_url = models.URLField(max_length=2048, blank=True)
    webhook_secret = models.CharField(max_length=128, default=new_webhook_secret)
    # No notice is sent between quiet_start and quiet_end (merchant's local time; may span
    # midnight). A notice due then waits for the end of the quiet period.
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "merchants"
        ordering = ["name"]
        indexes = [models.Index(fields=["country", "tier"], name="merchant_country_tier_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def channels(self) -> list[str]:
        """Where this merchant's notices go (none when no contact is set)."""
        found = []
        if self.webhook_url:
            found.append(NoticeChannel.WEBHOOK)
        if self.contact_email:
            found.append(NoticeChannel.EMAIL)
        return found

    def quiet_until(self, when: datetime) -> datetime | None:
        """The end of the quiet period ``when`` falls in, or None outside a quiet period."""
        if self.quiet_start is None or self.quiet_end is None or self.quiet_start == self.quiet_end:
            return None
        zone = zoneinfo.ZoneInfo(self.time_zone or "UTC")
        local = when.astimezone(zone)
        start, end, now = self.quiet_start, self.quiet_end, local.time()
        if start < end:
            inside = start <= now < end
        else:  # spans midnight, e.g. 22:00 → 06:00
            inside = now >= start or now < end
        if not inside:
            return None
        day = local.date() if now < end else local.date() + timedelta(days=1)
        return datetime.combine(day, end, tzinfo=zone).astimezone(when.tzinfo)

    def quiet_period_label(self) -> str:
        if self.quiet_start is None or self.quiet_end is None:
            return ""
        return f"{_hm(self.quiet_start)}–{_hm(self.quiet_end)} {self.time_zone}"


def _hm(value: time) -> str:
    return value.strftime("%H:%M")


class MerchantNotice(models.Model):
    """One notice to one merchant on one channel, delivered at most once.

    ``dedup_key`` names the event (e.g. the rollout and version that selected the merchant), so
    a second trigger for the same event creates nothing. Workers claim a notice with a
    conditional UPDATE (``status`` pending → sending) before sending, so a replayed task sends
    nothing twice.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=32, choices=NoticeKind.choices)
    channel = models.CharField(max_length=16, choices=NoticeChannel.choices)
    dedup_key = models.CharField(max_length=200)
    plugin_name = models.TextField()
    from_version = models.TextField(blank=True)
    to_version = models.TextField(blank=True)
    effective_at = models.DateTimeField(help_text="When the change may reach the merchant.")
    subject = models.CharField(max_length=200)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=NoticeStatus.choices, default=NoticeStatus.PENDING)
    deliver_after = models.DateTimeField(help_text="Not sent before this (quiet period).")
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "merchant_notices"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "dedup_key", "channel"], name="merchant_notice_once_per_channel"
            )
        ]
        indexes = [models.Index(fields=["status", "deliver_after"], name="notice_due_idx")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.merchant_id} by {self.channel} ({self.status})"


class NoticeDelivery(models.Model):
    """One delivery attempt of a notice: the log ops read when a merchant says "we never got it"."""

    notice = models.ForeignKey(MerchantNotice, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveIntegerField()
    outcome = models.CharField(max_length=16, choices=DeliveryOutcome.choices)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "merchant_notice_deliveries"
        ordering = ["notice", "attempt"]

    def __str__(self) -> str:
        return f"notice {self.notice_id} attempt {self.attempt}: {self.outcome}"
