"""Merchant registry changes and merchant notices: the one place each operation lives."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from molam_upgrades.models import AuditEntry

from . import egress, signing
from .choices import CLAIMABLE_STATES, DeliveryOutcome, NoticeChannel, NoticeKind, NoticeStatus
from .models import Merchant, MerchantNotice, NoticeDelivery

logger = logging.getLogger("molam.merchants")

# Fields an operator may set through the API or the admin (the secret is rotated, not set).
EDITABLE_FIELDS = (
    "name",
    "country",
    "tier",
    "high_value",
    "contact_email",
    "webhook_url",
    "quiet_start",
    "quiet_end",
    "time_zone",
)


def _snapshot(merchant: Merchant) -> dict[str, Any]:
    return {
        field: (str(value) if value is not None and not isinstance(value, (bool, str)) else value)
        for field in EDITABLE_FIELDS
        for value in [getattr(merchant, field)]
    }


@transaction.atomic
def register_merchant(*, actor: str, merchant_id=None, **fields) -> Merchant:
    """Add a merchant to the registry (audited)."""
    if merchant_id is not None:
        fields["id"] = merchant_id
    merchant = Merchant.objects.create(**fields)
    AuditEntry.record(actor=actor, action="merchant.registered", obj=merchant, after=_snapshot(merchant))
    return merchant


@transaction.atomic
def update_merchant(merchant_id, *, actor: str, **fields) -> Merchant:
    """Change a merchant's registry entry (audited with before and after)."""
    merchant = Merchant.objects.select_for_update().get(pk=merchant_id)
    before = _snapshot(merchant)
    for field, value in fields.items():
        if field not in EDITABLE_FIELDS:
            raise ValueError(f"{field} cannot be changed here")
        setattr(merchant, field, value)
    merchant.full_clean()
    merchant.save()
    after = _snapshot(merchant)
    changed = {k for k in after if after[k] != before[k]}
    if changed:
        AuditEntry.record(
            actor=actor,
            action="merchant.updated",
            obj=merchant,
            before={k: before[k] for k in sorted(changed)},
            after={k: after[k] for k in sorted(changed)},
        )
    return merchant


@transaction.atomic
def rotate_webhook_secret(merchant_id, *, actor: str) -> Merchant:
    """A new signing secret (the old one stops verifying at once); audited without the secret."""
    from .models import new_webhook_secret

    merchant = Merchant.objects.select_for_update().get(pk=merchant_id)
    merchant.webhook_secret = new_webhook_secret()
    merchant.save(update_fields=["webhook_secret", "updated_at"])
    AuditEntry.record(actor=actor, action="merchant.webhook_secret_rotated", obj=merchant)
    return merchant


def is_high_value(merchant_id) -> bool:
    """Whether a merchant is flagged high-value in the registry (unknown merchants are not)."""
    return Merchant.objects.filter(pk=merchant_id, high_value=True).exists()


# --- Notices ------------------------------------------------------------------------------


def _fmt(when: datetime, zone_name: str = "UTC") -> str:
    import zoneinfo

    local = when.astimezone(zoneinfo.ZoneInfo(zone_name or "UTC"))
    return local.strftime("%Y-%m-%d %H:%M ") + (zone_name or "UTC")


def notice_text(
    merchant: Merchant,
    *,
    kind: str,
    plugin_name: str,
    from_version: str,
    to_version: str,
    effective_at: datetime,
    detail: str = "",
) -> tuple[str, str]:
    """Subject and message: what will change, and when, in the merchant's own time zone."""
    when = f"{_fmt(effective_at, merchant.time_zone)} ({_fmt(effective_at)})"
    current = from_version or "your current version"
    if kind == NoticeKind.UPGRADE_SCHEDULED:
        subject = f"Molam {plugin_name} plugin: upgrade to {to_version} scheduled"
        message = (
            f"Your Molam {plugin_name} plugin will be upgraded from {current} to {to_version} "
            f"by the safe-upgrade agent at its first run after {when}. Checkout pauses for a few "
            "seconds while the new version is applied; a failed upgrade is rolled back automatically."
        )
    else:
        subject = f"Molam {plugin_name} plugin: rollback to {to_version} scheduled"
        message = (
            f"Our operations team has scheduled a rollback of your Molam {plugin_name} plugin from "
            f"{current} to {to_version}. The safe-upgrade agent performs it at its first run after "
            f"{when}. Checkout pauses for a few seconds while the previous version is restored."
        )
    if detail:
        message = f"{message} Reason: {detail}"
    return subject, message


def create_notices(
    merchant: Merchant,
    *,
    kind: str,
    dedup_key: str,
    plugin_name: str,
    to_version: str,
    from_version: str = "",
    effective_at: datetime | None = None,
    detail: str = "",
) -> list[MerchantNotice]:
    """Queue a notice on each of the merchant's channels, once per ``dedup_key``.

    The notice waits for the end of the merchant's quiet period; delivery starts after the
    surrounding transaction commits. Returns the notices created now (none when the event was
    already notified or the merchant has no contact).
    """
    now = timezone.now()
    effective_at = effective_at or now
    subject, message = notice_text(
        merchant,
        kind=kind,
        plugin_name=plugin_name,
        from_version=from_version,
        to_version=to_version,
        effective_at=effective_at,
        detail=detail,
    )
    deliver_after = merchant.quiet_until(now) or now
    created: list[MerchantNotice] = []
    for channel in merchant.channels:
        notice = MerchantNotice(
            merchant=merchant,
            kind=kind,
            channel=channel,
            dedup_key=dedup_key,
            plugin_name=plugin_name,
            from_version=from_version,
            to_version=to_version,
            effective_at=effective_at,
            subject=subject,
            deliver_after=deliver_after,
        )
        notice.payload = {
            "id": str(notice.id),
            "type": kind,
            "merchant_id": str(merchant.id),
            "plugin_name": plugin_name,
            "from_version": from_version or None,
            "to_version": to_version,
            "effective_at": effective_at.isoformat(),
            "subject": subject,
            "message": message,
            "created_at": now.isoformat(),
        }
        try:
            with transaction.atomic():
                notice.save(force_insert=True)
        except IntegrityError:
            continue  # this event was already notified on this channel
        created.append(notice)
    if created:
        transaction.on_commit(lambda: [_enqueue(n.pk, n.deliver_after) for n in created])
    return created


def _enqueue(notice_id, deliver_after: datetime) -> None:
    from .tasks import deliver_notice

    try:
        if deliver_after > timezone.now():
            deliver_notice.apply_async(args=[str(notice_id)], eta=deliver_after)
        else:
            deliver_notice.delay(str(notice_id))
    except Exception:  # broker away: the notice is stored, send_due_notices picks it up
        logger.warning("could not enqueue notice %s; the sweeper will send it", notice_id, exc_info=True)


# --- Delivery -----------------------------------------------------------------------------


class NoticeRetry(Exception):
    """The attempt failed in a way worth retrying; ``countdown`` is the backoff."""

    def __init__(self, message: str, countdown: int):
        super().__init__(message)
        self.countdown = countdown


@dataclass(frozen=True)
class _Attempt:
    outcome: str
    status_code: int | None = None
    error: str = ""


def backoff_seconds(attempt: int) -> int:
    """Exponential backoff after the n-th failed attempt: base, 2×base, 4×base … capped at 1 h."""
    base = int(getattr(settings, "NOTICE_RETRY_BASE_SECONDS", 30))
    return min(3600, base * 2 ** max(0, attempt - 1))


def max_attempts() -> int:
    return int(getattr(settings, "NOTICE_MAX_ATTEMPTS", 6))


# A worker that died mid-send leaves a notice in SENDING; after this long it may be retried
# (at-least-once: the receiver dedups on X-Molam-Notice-Id).
STALE_CLAIM = timedelta(minutes=10)


def claim(notice_id) -> bool:
    """Take a due notice for sending, atomically: one conditional UPDATE, row count 1 or 0."""
    now = timezone.now()
    due = Q(status__in=CLAIMABLE_STATES) | Q(status=NoticeStatus.SENDING, claimed_at__lt=now - STALE_CLAIM)
    return bool(
        MerchantNotice.objects.filter(due, pk=notice_id, deliver_after__lte=now).update(
            status=NoticeStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
    )


def deliver_notice(notice_id, *, resolve: egress.Resolver = egress.system_resolve) -> str:
    """One delivery attempt of a notice, if it can be claimed (a replayed task does nothing).

    Returns the resulting status; raises ``NoticeRetry`` when another attempt should follow.
    ``resolve`` turns the webhook's host name into addresses (the system resolver; tests give
    their own DNS answers).
    """
    if not claim(notice_id):
        return "not_claimed"
    notice = MerchantNotice.objects.select_related("merchant").get(pk=notice_id)
    started = time.monotonic()
    if notice.channel == NoticeChannel.WEBHOOK:
        attempt = _send_webhook(notice, resolve)
    else:
        attempt = _send_email(notice)
    duration_ms = int((time.monotonic() - started) * 1000)
    outcome = attempt.outcome
    if outcome == DeliveryOutcome.RETRY and notice.attempts >= max_attempts():
        outcome = DeliveryOutcome.FAILED
    now = timezone.now()
    NoticeDelivery.objects.create(
        notice=notice,
        attempt=notice.attempts,
        outcome=outcome,
        status_code=attempt.status_code,
        error=attempt.error[:2000],
        duration_ms=duration_ms,
    )
    if outcome == DeliveryOutcome.DELIVERED:
        MerchantNotice.objects.filter(pk=notice.pk).update(
            status=NoticeStatus.DELIVERED, delivered_at=now, last_error="", next_attempt_at=None
        )
        logger.info(
            "notice %s delivered by %s", notice.pk, notice.channel, extra={"event": "notice_delivered"}
        )
        return NoticeStatus.DELIVERED
    if outcome == DeliveryOutcome.FAILED:
        MerchantNotice.objects.filter(pk=notice.pk).update(
            status=NoticeStatus.FAILED, last_error=attempt.error[:2000], next_attempt_at=None
        )
        logger.error(
            "notice %s failed after %s attempts: %s",
            notice.pk,
            notice.attempts,
            attempt.error,
            extra={"event": "notice_failed"},
        )
        return NoticeStatus.FAILED
    countdown = backoff_seconds(notice.attempts)
    MerchantNotice.objects.filter(pk=notice.pk).update(
        status=NoticeStatus.RETRYING,
        last_error=attempt.error[:2000],
        next_attempt_at=now + timedelta(seconds=countdown),
    )
    raise NoticeRetry(attempt.error, countdown)


def _body(notice: MerchantNotice) -> bytes:
    return json.dumps(notice.payload, sort_keys=True, separators=(",", ":")).encode()


def _send_webhook(notice: MerchantNotice, resolve: egress.Resolver) -> _Attempt:
    merchant = notice.merchant
    if not merchant.webhook_url:
        return _Attempt(DeliveryOutcome.FAILED, error="The merchant has no webhook URL any more.")
    body = _body(notice)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "molam-upgrades-notices/1",
        signing.NOTICE_ID_HEADER: str(notice.pk),
        **signing.signed_headers(merchant.webhook_secret, body),
    }
    timeout = float(getattr(settings, "NOTICE_HTTP_TIMEOUT", 5.0))
    try:
        # Checked again here, not only when the URL was set: the name may resolve elsewhere
        # now, and URLs stored before the check existed are not trusted either.
        response = egress.post(
            merchant.webhook_url,
            data=body,
            headers=headers,
            timeout=timeout,
            allow_private=egress.private_allowed(),
            resolve=resolve,
        )
    except egress.UnsafeDestination as exc:
        # Final, not retried: waiting does not make an internal address public, and every
        # retry would be one more chance for a rebinding DNS server to time its answer.
        logger.warning(
            "notice %s not sent: %s", notice.pk, exc, extra={"event": "notice_destination_refused"}
        )
        return _Attempt(DeliveryOutcome.FAILED, error=f"Refused destination: {exc}")
    except requests.RequestException as exc:
        return _Attempt(DeliveryOutcome.RETRY, error=f"{type(exc).__name__}: {exc}")
    code = response.status_code
    if 200 <= code < 300:
        return _Attempt(DeliveryOutcome.DELIVERED, status_code=code)
    if 300 <= code < 400:
        # Never followed (the target could be internal): the merchant must give the final URL.
        location = response.headers.get("Location", "")[:300]
        return _Attempt(
            DeliveryOutcome.FAILED,
            status_code=code,
            error=f"HTTP {code} from the merchant's webhook: redirects are not followed (Location: {location})",
        )
    # Server trouble and throttling are worth retrying; any other answer will not change.
    outcome = DeliveryOutcome.RETRY if code >= 500 or code in (408, 429) else DeliveryOutcome.FAILED
    return _Attempt(outcome, status_code=code, error=f"HTTP {code} from the merchant's webhook")


def _send_email(notice: MerchantNotice) -> _Attempt:
    merchant = notice.merchant
    if not merchant.contact_email:
        return _Attempt(DeliveryOutcome.FAILED, error="The merchant has no contact email any more.")
    try:
        send_mail(
            notice.subject,
            notice.payload.get("message", ""),
            settings.DEFAULT_FROM_EMAIL,
            [merchant.contact_email],
            fail_silently=False,
        )
    except Exception as exc:  # SMTP errors are many; all of them are worth a later retry
        return _Attempt(DeliveryOutcome.RETRY, error=f"{type(exc).__name__}: {exc}")
    return _Attempt(DeliveryOutcome.DELIVERED)


def due_notice_ids(now: datetime | None = None, limit: int = 500) -> list:
    """Notices nobody is sending: due and pending, a lost retry, or a claim left by a dead worker."""
    now = now or timezone.now()
    lost_retry = Q(status=NoticeStatus.RETRYING, next_attempt_at__lte=now - timedelta(minutes=5))
    stale = Q(status=NoticeStatus.SENDING, claimed_at__lt=now - STALE_CLAIM)
    return list(
        MerchantNotice.objects.filter(
            Q(status=NoticeStatus.PENDING) | lost_retry | stale, deliver_after__lte=now
        )
        .order_by("deliver_after")
        .values_list("pk", flat=True)[:limit]
    )
