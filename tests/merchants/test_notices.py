"""Merchant notices: signed webhooks to a real local receiver, retries, no duplicates, email, quiet hours."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.core import mail

from merchants import services, signing, tasks
from merchants.choices import NoticeKind, NoticeStatus
from merchants.models import MerchantNotice, NoticeDelivery

from .factories import MerchantFactory, MerchantNoticeFactory
from .receiver import start_receiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    receiver, server = start_receiver()
    yield receiver
    server.shutdown()
    server.server_close()


def notify(merchant, key="upgrade:woocommerce:4.0.0"):
    return services.create_notices(
        merchant,
        kind=NoticeKind.UPGRADE_SCHEDULED,
        dedup_key=key,
        plugin_name="woocommerce",
        from_version="3.9.0",
        to_version="4.0.0",
    )


def test_a_webhook_notice_is_signed_and_verifies_with_the_merchant_secret(receiver):
    merchant = MerchantFactory(webhook_url=receiver.url, contact_email="")

    [notice] = notify(merchant)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert signing.verify(
        merchant.webhook_secret,
        request.body,
        request.headers[signing.TIMESTAMP_HEADER],
        request.headers[signing.SIGNATURE_HEADER],
    )
    assert not signing.verify(
        "another-secret",
        request.body,
        request.headers[signing.TIMESTAMP_HEADER],
        request.headers[signing.SIGNATURE_HEADER],
    )
    assert not signing.verify(
        merchant.webhook_secret,
        request.body + b" ",
        request.headers[signing.TIMESTAMP_HEADER],
        request.headers[signing.SIGNATURE_HEADER],
    )
    payload = json.loads(request.body)
    # What will change and when.
    assert payload["type"] == "upgrade_scheduled" and payload["to_version"] == "4.0.0"
    assert payload["from_version"] == "3.9.0" and payload["effective_at"]
    assert "from 3.9.0 to 4.0.0" in payload["message"] and "Africa/Dakar" in payload["message"]
    assert request.headers[signing.NOTICE_ID_HEADER] == str(notice.pk)
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.DELIVERED and notice.attempts == 1
    assert list(notice.deliveries.values_list("outcome", "status_code")) == [("delivered", 200)]


def test_a_stale_timestamp_does_not_verify():
    body = b'{"a":1}'
    headers = signing.signed_headers("s3cret", body, now=1_000_000)
    assert signing.verify(
        "s3cret", body, headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER], now=1_000_100
    )
    assert not signing.verify(
        "s3cret", body, headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER], now=1_000_400
    )


def test_5xx_answers_are_retried_until_delivered_and_every_attempt_is_logged(receiver):
    receiver.answers = [500, 503]
    merchant = MerchantFactory(webhook_url=receiver.url, contact_email="")

    [notice] = notify(merchant)

    assert len(receiver.requests) == 3
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.DELIVERED and notice.attempts == 3
    log = list(NoticeDelivery.objects.filter(notice=notice).values_list("attempt", "outcome", "status_code"))
    assert log == [(1, "retry", 500), (2, "retry", 503), (3, "delivered", 200)]
    # Every attempt carries the same body, each freshly signed.
    assert len({r.body for r in receiver.requests}) == 1


def test_backoff_is_exponential(settings):
    settings.NOTICE_RETRY_BASE_SECONDS = 30
    assert [services.backoff_seconds(n) for n in range(1, 6)] == [30, 60, 120, 240, 480]
    assert services.backoff_seconds(20) == 3600


def test_a_4xx_answer_is_final_and_not_retried(receiver):
    receiver.answers = [410]
    merchant = MerchantFactory(webhook_url=receiver.url, contact_email="")
    [notice] = notify(merchant)
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.FAILED and len(receiver.requests) == 1
    assert "HTTP 410" in notice.last_error


def test_the_attempt_budget_ends_in_failed(receiver, settings):
    settings.NOTICE_MAX_ATTEMPTS = 3
    receiver.answers = [500] * 10
    merchant = MerchantFactory(webhook_url=receiver.url, contact_email="")
    [notice] = notify(merchant)
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.FAILED and notice.attempts == 3 and len(receiver.requests) == 3


def test_a_replayed_task_sends_nothing_twice(receiver):
    merchant = MerchantFactory(webhook_url=receiver.url, contact_email="")
    [notice] = notify(merchant)
    assert len(receiver.requests) == 1

    # The broker redelivers the same message (acks_late after a worker crash), twice.
    assert tasks.deliver_notice.apply(args=[str(notice.pk)]).get() == "not_claimed"
    assert services.deliver_notice(notice.pk) == "not_claimed"
    assert tasks.send_due_notices() == 0

    assert len(receiver.requests) == 1
    assert NoticeDelivery.objects.filter(notice=notice).count() == 1


def test_the_same_event_is_notified_once(receiver):
    merchant = MerchantFactory(webhook_url=receiver.url)
    assert len(notify(merchant)) == 2  # webhook and email
    assert notify(merchant) == []
    assert len(receiver.requests) == 1 and len(mail.outbox) == 1


def test_an_email_notice_goes_through_django_mail(settings):
    merchant = MerchantFactory(contact_email="finance@boutique.example", webhook_url="")
    [notice] = notify(merchant)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["finance@boutique.example"]
    assert "4.0.0" in message.subject and "from 3.9.0 to 4.0.0" in message.body
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.DELIVERED


def test_a_notice_due_in_the_quiet_period_waits_for_its_end(receiver):
    # Quiet 22:00–06:00 in Dakar (UTC+0); it is 23:30.
    merchant = MerchantFactory(
        webhook_url=receiver.url,
        contact_email="",
        quiet_start=time(22),
        quiet_end=time(6),
        time_zone="Africa/Dakar",
    )
    with time_machine.travel(datetime(2026, 11, 28, 23, 30, tzinfo=UTC), tick=False):
        [notice] = notify(merchant)
        assert notice.deliver_after == datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
        assert tasks.send_due_notices() == 0
    assert receiver.requests == []
    with time_machine.travel(datetime(2026, 11, 29, 6, 1, tzinfo=UTC), tick=False):
        assert tasks.send_due_notices() == 1
    assert len(receiver.requests) == 1
    assert MerchantNotice.objects.get(pk=notice.pk).status == NoticeStatus.DELIVERED


def test_quiet_period_arithmetic_in_the_merchants_time_zone():
    merchant = MerchantFactory.build(quiet_start=time(12), quiet_end=time(14), time_zone="Europe/Paris")
    inside = datetime(2026, 11, 29, 11, 30, tzinfo=UTC)  # 12:30 in Paris
    assert merchant.quiet_until(inside) == datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
    assert merchant.quiet_until(datetime(2026, 11, 29, 14, 0, tzinfo=UTC)) is None


def test_a_crashed_sender_is_retried_by_the_sweeper_after_the_claim_goes_stale(receiver):
    merchant = MerchantFactory(webhook_url=receiver.url, contact_email="")
    with time_machine.travel(datetime(2026, 11, 29, 8, 0, tzinfo=UTC), tick=False):
        notice = MerchantNoticeFactory(
            merchant=merchant,
            dedup_key="k",
            effective_at=datetime(2026, 11, 29, 8, 0, tzinfo=UTC),
            status=NoticeStatus.SENDING,
            claimed_at=datetime(2026, 11, 29, 8, 0, tzinfo=UTC),
            attempts=1,
        )
        assert tasks.send_due_notices() == 0  # someone is sending it
    with time_machine.travel(datetime(2026, 11, 29, 8, 0, tzinfo=UTC) + timedelta(minutes=11), tick=False):
        assert tasks.send_due_notices() == 1
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.DELIVERED and len(receiver.requests) == 1
