"""A webhook URL must name a public https:// endpoint: the control plane is no proxy into its network."""

from __future__ import annotations

import pytest

from merchants.models import Merchant
from molam_upgrades.models import AuditEntry
from tests.conftest import assert_error

from .factories import MerchantFactory
from .test_api_merchants import new_merchant

pytestmark = pytest.mark.django_db

REFUSED = [
    "http://boutique.example/molam",  # not https
    "ftp://boutique.example/molam",
    "https:///molam",  # no host
    "https://boutique.example:99999/molam",  # no such port
    "https://user:pass@boutique.example/molam",  # userinfo
    "https://user@boutique.example/molam",
    "https://10.0.0.5/molam",  # private
    "https://172.16.8.1/molam",
    "https://192.168.1.10/molam",
    "https://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
    "https://127.0.0.1:6379/",  # loopback: Redis
    "https://127.1/molam",  # loopback, short form the resolver accepts
    "https://2130706433/molam",  # loopback, as one decimal number
    "https://0x7f000001/molam",  # loopback, in hexadecimal
    "https://0.0.0.0/molam",  # unspecified
    "https://100.64.0.1/molam",  # shared address space (carrier-grade NAT)
    "https://224.0.0.1/molam",  # multicast
    "https://240.0.0.1/molam",  # reserved
    "https://[::1]/molam",
    "https://[::]/molam",
    "https://[fe80::1]/molam",
    "https://[fd00::5]/molam",  # unique local
    "https://[::ffff:10.0.0.5]/molam",  # IPv4-mapped private
    "https://[::ffff:127.0.0.1]:6379/",
    "https://[64:ff9b::a00:5]/molam",  # NAT64 of 10.0.0.5
    "https://\uff11\uff12\uff17.0.0.1/molam",  # full-width digits: IDNA maps them to 127.0.0.1
    "https://127\u30020\u30020\u30021/molam",  # ideographic full stops
    "https://localhost/molam",
    "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/molam",  # full-width "localhost"
    "https://LOCALHOST./molam",
    "https://hooks.localhost/molam",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://printer.local/molam",
    "https://redis/",  # a single-label name: a compose service, a search-domain host
    "https://bad_host name.example/molam",
    "https://1.2.3.4\x00/molam",
]


@pytest.fixture(autouse=True)
def _production_rules(settings):
    settings.MERCHANT_WEBHOOK_ALLOW_PRIVATE = False


@pytest.mark.parametrize("url", REFUSED)
def test_a_webhook_url_reaching_inside_the_network_is_refused_at_registration(cast, url):
    body = assert_error(cast.ops.post("merchants", new_merchant(webhook_url=url)), 400)
    assert "webhook_url" in body["details"], body
    assert not Merchant.objects.exists()


@pytest.mark.parametrize("url", REFUSED)
def test_a_webhook_url_reaching_inside_the_network_is_refused_on_change(cast, url):
    merchant = MerchantFactory(webhook_url="https://hooks.boutique.example/molam")
    assert_error(cast.ops.patch(f"merchants/{merchant.pk}", {"webhook_url": url}), 400)
    merchant.refresh_from_db()
    assert merchant.webhook_url == "https://hooks.boutique.example/molam"
    assert not AuditEntry.objects.filter(action="merchant.updated").exists()


def test_the_refusal_says_why_in_the_usual_error_format(cast):
    body = assert_error(
        cast.ops.post("merchants", new_merchant(webhook_url="https://169.254.169.254/latest/meta-data/")), 400
    )
    [message] = body["details"]["webhook_url"]
    assert "169.254.169.254" in message and "public https://" in message
    body = assert_error(
        cast.ops.post("merchants", new_merchant(webhook_url="https://ops:s3cret@boutique.example/")), 400
    )
    assert "user name or password" in body["details"]["webhook_url"][0]


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.boutique.example/molam/notices",
        "https://hooks.boutique.example:8443/molam?source=molam",  # an unusual port is fine
        "https://8.8.8.8/molam",
        "https://[2001:4860:4860::8888]/molam",
        "https://bücher.example/molam",  # internationalised name
    ],
)
def test_a_public_https_webhook_url_is_accepted(cast, url):
    response = cast.ops.post("merchants", new_merchant(webhook_url=url))
    assert response.status_code == 201, response.content
    assert response.json()["merchant"]["webhook_url"] == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",
        "http://[::1]:9000/hook",
        "https://10.0.0.5/hook",
        "https://receiver.localhost/hook",
    ],
)
def test_local_receivers_are_allowed_when_the_setting_says_so(cast, settings, url):
    settings.MERCHANT_WEBHOOK_ALLOW_PRIVATE = True
    response = cast.ops.post("merchants", new_merchant(webhook_url=url))
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "url",
    [
        "http://boutique.example/hook",  # plain http stays loopback-only
        "http://10.0.0.5/hook",
        "https://user:pass@127.0.0.1/hook",  # userinfo is never accepted
    ],
)
def test_the_setting_does_not_allow_plain_http_to_other_hosts_or_userinfo(cast, settings, url):
    settings.MERCHANT_WEBHOOK_ALLOW_PRIVATE = True
    assert_error(cast.ops.post("merchants", new_merchant(webhook_url=url)), 400)
    assert not Merchant.objects.exists()
