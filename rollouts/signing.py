"""Release authenticity on registration (TUF's rule: signatures required once there is a key).

With ``RELEASE_SIGNING_PUBLIC_KEY`` set (base64 of an Ed25519 public key, the agent's
``release.public_key``), ``POST releases`` fetches the package once, checks its sha256 and the
Ed25519 signature over its raw bytes (what the agent verifies before installing), and refuses
an unsigned release or a bad signature with a 400. The key format is the agent's
(``molam_agent.release.load_public_key``): one rule for both sides.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from urllib.parse import urlsplit

import requests
from django.conf import settings

from molam_agent.transport import is_loopback_host  # the agent's rule: a URL it would refuse is refused here
from molam_upgrades.exceptions import ValidationError

# Bounded like every wait: a release larger than this, or slower than the timeouts, is refused.
MAX_PACKAGE_BYTES = 100 * 1024 * 1024
FETCH_TIMEOUT = (5, 30)  # connect, read (seconds)


def signing_key() -> str:
    return (getattr(settings, "RELEASE_SIGNING_PUBLIC_KEY", "") or "").strip()


def check_download_url(url: str) -> None:
    """https only; http for loopback hosts (local mirrors and tests). Raises ValidationError."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        return
    raise ValidationError(
        "Invalid download_url: must be https (http only for loopback hosts).",
        {"download_url": ["Must be https (http only for loopback hosts)."]},
    )


def verify_release(*, download_url: str, sha256: str, signature: str) -> None:
    """When a signing key is configured: the release must be signed and the signature must verify."""
    key_text = signing_key()
    if not key_text:
        return
    if not signature:
        raise ValidationError(
            "Invalid signature: this control plane requires signed releases (a signing key is configured).",
            {"signature": ["Required: a release signing key is configured."]},
        )
    # Imported here: the agent's release module is only needed when releases must be signed.
    from molam_agent.errors import VerificationError
    from molam_agent.release import load_public_key

    try:
        key = load_public_key(key_text)
    except VerificationError as exc:
        raise ValidationError(f"The configured release signing key is unusable: {exc}.") from exc
    package = _fetch(download_url)
    if hashlib.sha256(package).hexdigest() != sha256:
        raise ValidationError(
            "Invalid sha256: the package at download_url does not have this checksum.",
            {"sha256": ["Does not match the package at download_url."]},
        )
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(base64.b64decode(signature, validate=True), package)
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise ValidationError(
            "Invalid signature: it does not verify against the release signing key.",
            {"signature": ["Does not verify against the release signing key."]},
        ) from exc


def _fetch(url: str) -> bytes:
    try:
        with requests.get(url, stream=True, timeout=FETCH_TIMEOUT) as response:
            if response.status_code != 200:
                raise ValidationError(
                    f"Invalid download_url: fetching the package to verify its signature answered "
                    f"HTTP {response.status_code}.",
                    {"download_url": [f"HTTP {response.status_code}."]},
                )
            chunks, size = [], 0
            for chunk in response.iter_content(chunk_size=1 << 16):
                size += len(chunk)
                if size > MAX_PACKAGE_BYTES:
                    raise ValidationError(
                        "Invalid download_url: the package is larger than 100 MiB.",
                        {"download_url": ["Larger than 100 MiB."]},
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except requests.RequestException as exc:
        raise ValidationError(
            f"Invalid download_url: the package could not be fetched to verify its signature "
            f"({type(exc).__name__}).",
            {"download_url": ["Could not be fetched."]},
        ) from exc
