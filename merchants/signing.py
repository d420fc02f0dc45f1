"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"`` with the merchant's secret.

Receivers recompute the HMAC from the raw body and the ``X-Molam-Timestamp`` header, compare
it in constant time with ``X-Molam-Signature`` (``sha256=<hex>``) and refuse timestamps older
than a few minutes, so a captured request cannot be replayed later (the Stripe scheme).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Molam-Signature"
TIMESTAMP_HEADER = "X-Molam-Timestamp"
NOTICE_ID_HEADER = "X-Molam-Notice-Id"
DEFAULT_TOLERANCE_S = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Molam-Signature`` value for a body sent at ``timestamp`` (Unix seconds)."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = int(now if now is not None else time.time())
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = now if now is not None else time.time()
    if abs(current - sent_at) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, sent_at, body), signature or "")
