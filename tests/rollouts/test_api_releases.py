from __future__ import annotations

import base64

import pytest

from molam_upgrades.models import AuditEntry
from rollouts.models import Release
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

RELEASE = {
    "plugin_name": "woocommerce",
    "version": "4.0.0",
    "download_url": "https://releases.molam.example/woocommerce-4.0.0.zip",
    "sha256": "A" * 64,
}


def test_register_and_list_releases(cast):
    signature = base64.b64encode(b"s" * 64).decode()
    response = cast.ops.post("releases", {**RELEASE, "signature": signature})
    assert response.status_code == 201
    release = Release.objects.get()
    assert release.sha256 == "a" * 64 and release.signature == signature
    assert AuditEntry.objects.filter(action="release.registered").count() == 1
    body = cast.viewer.get("releases", {"plugin_name": "woocommerce"}).json()
    assert body["total"] == 1 and body["releases"][0]["version"] == "4.0.0"
    assert cast.viewer.get("releases", {"plugin_name": "shopify"}).json()["total"] == 0


def test_release_is_unique_per_plugin_and_version(cast):
    cast.ops.post("releases", RELEASE)
    assert_error(cast.ops.post("releases", RELEASE), 409)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sha256": "zz"}, "sha256"),
        ({"download_url": "ftp://x/y.zip"}, "download_url"),
        ({"download_url": "not a url"}, "download_url"),
        ({"signature": "!!!"}, "signature"),
        ({"signature": base64.b64encode(b"short").decode()}, "signature"),
    ],
)
def test_bad_releases(cast, change, field):
    body = assert_error(cast.ops.post("releases", {**RELEASE, **change}), 400)
    assert field in body["details"]
    assert not Release.objects.exists()
