"""At delivery the webhook's host is resolved once, every address must be public, the connection
goes to the address checked, and a redirect is not followed: real HTTP(S) to local receivers.

No outside DNS here: the tests give ``deliver_notice`` / ``egress.post`` their own DNS answers
through the ``resolve`` parameter, and use the system resolver only for ``localhost``.
"""

from __future__ import annotations

import socket

import pytest
import requests

from merchants import egress, services
from merchants.choices import NoticeStatus
from merchants.models import MerchantNotice, NoticeDelivery

from .factories import MerchantNoticeFactory
from .receiver import start_receiver
from .tls import issue_certificate

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
def receivers():
    started = []

    def start(tls=None):
        receiver, server = start_receiver(tls)
        started.append(server)
        return receiver

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def dns(answers: dict[str, list[str]], calls: list[str] | None = None) -> egress.Resolver:
    """A resolver that knows only ``answers``, and records every name it was asked for."""

    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return resolve


def pending_webhook_notice(webhook_url: str) -> MerchantNotice:
    """A due webhook notice, stored without sending it (the test then delivers it)."""
    return MerchantNoticeFactory(merchant__webhook_url=webhook_url)


def post(url: str, resolve: egress.Resolver, **options) -> requests.Response:
    """``egress.post`` of an empty JSON body to a local receiver (private addresses allowed)."""
    return egress.post(
        url, data=b"{}", headers=HEADERS, timeout=5, allow_private=True, resolve=resolve, **options
    )


def test_a_public_name_that_resolves_to_a_private_address_is_not_contacted(settings):
    settings.MERCHANT_WEBHOOK_ALLOW_PRIVATE = False
    notice = pending_webhook_notice("https://hooks.boutique.example/molam")

    status = services.deliver_notice(notice.pk, resolve=dns({"hooks.boutique.example": ["10.0.0.5"]}))

    # Final: waiting does not make the address public, and is not retried.
    assert status == NoticeStatus.FAILED
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.FAILED and notice.attempts == 1
    assert "10.0.0.5" in notice.last_error and "Refused destination" in notice.last_error
    [delivery] = NoticeDelivery.objects.filter(notice=notice)
    assert (delivery.outcome, delivery.status_code) == ("failed", None)


@pytest.mark.parametrize(
    "addresses",
    [
        ["93.184.216.34", "127.0.0.1"],  # one public answer does not vouch for the other
        ["169.254.169.254"],
        ["::ffff:192.168.0.10"],
        ["2606:2800:220:1::", "fd00::1"],
        ["100.64.3.4"],
    ],
)
def test_any_non_public_address_among_the_answers_refuses_the_delivery(settings, addresses):
    settings.MERCHANT_WEBHOOK_ALLOW_PRIVATE = False
    notice = pending_webhook_notice("https://hooks.boutique.example/molam")
    resolve = dns({"hooks.boutique.example": addresses})
    assert services.deliver_notice(notice.pk, resolve=resolve) == NoticeStatus.FAILED
    notice.refresh_from_db()
    assert "not a public address" in notice.last_error


def test_localhost_through_the_system_resolver_is_refused():
    with pytest.raises(egress.UnsafeDestination, match="127.0.0.1"):
        egress.vetted_address("localhost", 443, allow_private=False)
    assert egress.vetted_address("localhost", 443, allow_private=True) in ("127.0.0.1", "::1")


def test_a_url_stored_before_the_rules_is_checked_again_at_delivery(settings, receivers):
    # http:// to a loopback receiver that really answers: only the setting kept it reachable.
    receiver = receivers()
    settings.MERCHANT_WEBHOOK_ALLOW_PRIVATE = False
    notice = pending_webhook_notice(receiver.url)

    assert services.deliver_notice(notice.pk) == NoticeStatus.FAILED

    assert receiver.requests == []
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.FAILED and "https://" in notice.last_error


def test_a_name_that_does_not_resolve_is_a_network_error_and_retried(settings):
    settings.MERCHANT_WEBHOOK_ALLOW_PRIVATE = False
    notice = pending_webhook_notice("https://hooks.boutique.example/molam")
    with pytest.raises(services.NoticeRetry):
        services.deliver_notice(notice.pk, resolve=dns({}))
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.RETRYING and "Could not resolve" in notice.last_error


def test_the_connection_goes_to_the_address_checked_not_a_second_lookup(settings, receivers):
    # The resolver is asked once, and the request carries the URL's name in Host. (Some systems
    # resolve *.localhost themselves; the https test below uses a name only the test resolver
    # knows, so there the request arriving at all proves the pin.)
    receiver = receivers()
    settings.MERCHANT_WEBHOOK_ALLOW_PRIVATE = True
    port = receiver.url.split(":")[2].split("/")[0]
    notice = pending_webhook_notice(f"http://pinned.localhost:{port}/molam/notices")
    calls: list[str] = []

    status = services.deliver_notice(notice.pk, resolve=dns({"pinned.localhost": ["127.0.0.1"]}, calls=calls))

    assert status == NoticeStatus.DELIVERED
    assert calls == ["pinned.localhost"]
    [request] = receiver.requests
    assert request.headers["Host"] == f"pinned.localhost:{port}"


def test_an_internationalised_name_is_resolved_and_sent_as_it_goes_on_the_wire(receivers):
    receiver = receivers()
    port = receiver.url.split(":")[2].split("/")[0]
    calls: list[str] = []
    response = post(
        f"http://bücher.localhost:{port}/molam", dns({"xn--bcher-kva.localhost": ["127.0.0.1"]}, calls=calls)
    )
    assert response.status_code == 200 and calls == ["xn--bcher-kva.localhost"]
    assert receiver.requests[0].headers["Host"] == f"xn--bcher-kva.localhost:{port}"


def test_https_to_the_pinned_address_still_verifies_the_certificate_for_the_name(tmp_path, receivers):
    ca, cert, key = issue_certificate(tmp_path, "hooks.boutique.example")
    receiver = receivers(tls=(cert, key))
    port = receiver.url.split(":")[2].split("/")[0]
    resolve = dns({"hooks.boutique.example": ["127.0.0.1"], "other.boutique.example": ["127.0.0.1"]})

    response = post(f"https://hooks.boutique.example:{port}/molam", resolve, verify=ca)
    assert response.status_code == 200
    assert receiver.requests[0].headers["Host"] == f"hooks.boutique.example:{port}"

    # Same address, another name: the certificate does not match it, so no request is sent.
    with pytest.raises(requests.exceptions.SSLError):
        post(f"https://other.boutique.example:{port}/molam", resolve, verify=ca)
    assert len(receiver.requests) == 1


def test_a_redirect_to_an_internal_address_is_not_followed(settings, receivers):
    settings.MERCHANT_WEBHOOK_ALLOW_PRIVATE = True  # the receiver itself is on loopback
    receiver = receivers()
    # Redirect back to this same receiver: a followed redirect would show as a second request.
    receiver.answers = [302]
    receiver.location = receiver.url.replace("/molam/notices", "/latest/meta-data/")
    notice = pending_webhook_notice(receiver.url)

    assert services.deliver_notice(notice.pk) == NoticeStatus.FAILED

    assert len(receiver.requests) == 1
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.FAILED and notice.attempts == 1
    assert "redirects are not followed" in notice.last_error and "/latest/meta-data/" in notice.last_error
    log = list(NoticeDelivery.objects.filter(notice=notice).values_list("attempt", "outcome", "status_code"))
    assert log == [(1, "failed", 302)]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("10.1.2.3", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.0.251", False),
        ("198.18.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.5", False),
        ("::ffff:93.184.216.34", True),
        ("64:ff9b::a00:5", False),
        ("2002:a00:5::", False),
    ],
)
def test_which_addresses_count_as_public(address, public):
    assert egress.is_public_address(address) is public
