"""POST releases: https download URLs only (loopback excepted); signed releases once a signing key is set."""

from __future__ import annotations

import base64
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from molam_upgrades.models import AuditEntry
from rollouts.models import Release
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

PACKAGE = b"PK\x03\x04 a plugin release, bytes as the agent downloads them" * 50


@pytest.fixture
def package_server():
    """A real loopback HTTP server serving the release package (and a 404 for anything else)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != "/molam-form-4.0.0.zip":
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(PACKAGE)))
            self.end_headers()
            self.wfile.write(PACKAGE)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def signing_key(settings):
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    settings.RELEASE_SIGNING_PUBLIC_KEY = base64.b64encode(public).decode()
    return private


def _release(url: str, signature: str | None = None, sha256: str | None = None) -> dict:
    body = {
        "plugin_name": "woocommerce",
        "version": "4.0.0",
        "download_url": url,
        "sha256": sha256 or hashlib.sha256(PACKAGE).hexdigest(),
    }
    if signature is not None:
        body["signature"] = signature
    return body


@pytest.mark.parametrize(
    "url",
    [
        "http://releases.molam.example/woocommerce.zip",
        "http://10.0.0.5/woocommerce.zip",
        "ftp://x.example/a.zip",
        # The agent does not count *.localhost as loopback (a resolver may send it elsewhere):
        # a release it would refuse to download is refused when registered.
        "http://mirror.localhost:8080/woocommerce.zip",
    ],
)
def test_plain_http_download_urls_are_refused(cast, url):
    body = assert_error(cast.ops.post("releases", _release(url)), 400)
    assert "download_url" in body["details"] and "https" in body["error"]
    assert not Release.objects.exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_loopback_http_is_accepted_for_local_mirrors(cast, host):
    response = cast.ops.post("releases", _release(f"http://{host}:8080/woocommerce.zip"))
    assert response.status_code == 201, response.content


def test_with_a_signing_key_an_unsigned_release_is_refused(cast, signing_key, package_server):
    body = assert_error(cast.ops.post("releases", _release(f"{package_server}/molam-form-4.0.0.zip")), 400)
    assert "signature" in body["details"] and "signed" in body["error"]
    assert (
        not Release.objects.exists() and not AuditEntry.objects.filter(action="release.registered").exists()
    )


def test_with_a_signing_key_a_bad_signature_is_refused(cast, signing_key, package_server):
    forged = base64.b64encode(Ed25519PrivateKey.generate().sign(PACKAGE)).decode()
    body = assert_error(
        cast.ops.post("releases", _release(f"{package_server}/molam-form-4.0.0.zip", forged)), 400
    )
    assert "does not verify" in body["error"]
    assert not Release.objects.exists()


def test_with_a_signing_key_a_checksum_that_does_not_match_the_package_is_refused(
    cast, signing_key, package_server
):
    signature = base64.b64encode(signing_key.sign(PACKAGE)).decode()
    response = cast.ops.post(
        "releases", _release(f"{package_server}/molam-form-4.0.0.zip", signature, sha256="b" * 64)
    )
    assert "sha256" in assert_error(response, 400)["details"]


def test_with_a_signing_key_a_package_that_cannot_be_fetched_is_refused(cast, signing_key, package_server):
    signature = base64.b64encode(signing_key.sign(PACKAGE)).decode()
    response = cast.ops.post("releases", _release(f"{package_server}/missing.zip", signature))
    assert "HTTP 404" in assert_error(response, 400)["error"]


def test_with_a_signing_key_a_good_signature_registers_the_release(cast, signing_key, package_server):
    signature = base64.b64encode(signing_key.sign(PACKAGE)).decode()
    response = cast.ops.post("releases", _release(f"{package_server}/molam-form-4.0.0.zip", signature))
    assert response.status_code == 201, response.content
    assert response.json()["release"]["signature"] == signature
    assert Release.objects.get().signature == signature
