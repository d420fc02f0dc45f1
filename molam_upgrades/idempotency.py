"""Idempotency-Key records: the first response to a keyed write, stored once per (principal, key).

``IdempotencyMixin`` (``molam_upgrades.api.viewsets``) runs every writing action through them;
a write may also claim its key inside its own statement (``rollbacks.services.store_report``)
with the row :func:`key_record` builds.

In SQL rather than through the ORM: they run around every keyed write, and building the queries
would cost several times their execution.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connection
from django.utils import timezone

from .models import IdempotencyRecord

COLUMNS = ("principal", "key", "request_fingerprint", "status_code", "response_body", "created_at")


def first_response(principal: str, key: str) -> tuple[str, int, Any] | None:
    """(fingerprint, status code, body) stored for ``(principal, key)``, or None."""
    meta = IdempotencyRecord._meta
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT request_fingerprint, status_code, response_body FROM {meta.db_table} "
            "WHERE principal = %s AND key = %s",
            [principal, key],
        )
        row = cur.fetchone()
    if row is None:
        return None
    body = meta.get_field("response_body").from_db_value(row[2], None, connection)
    return row[0], row[1], body


def key_record(principal: str, key: str, fingerprint: str, status_code: int, data: Any) -> dict:
    """The row that records ``data`` as the first response for ``(principal, key)``: the values
    of ``COLUMNS`` (the body as plain JSON data)."""
    return {
        "principal": principal,
        "key": key,
        "request_fingerprint": fingerprint,
        "status_code": status_code,
        "response_body": json.loads(json.dumps(data, default=str)),
        "created_at": timezone.now(),
    }


# INSERT … ON CONFLICT DO NOTHING RETURNING: no savepoint and no exception on the race
# (PostgreSQL waits for the other transaction holding the key, then sees its row).
CLAIM_SQL = (
    f"INSERT INTO {IdempotencyRecord._meta.db_table} ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT (principal, key) DO NOTHING RETURNING 1"
)


def claim(record: dict) -> bool:
    """Store ``record`` (:func:`key_record`); False when another request stored its key first."""
    meta = IdempotencyRecord._meta
    values = [meta.get_field(c).get_db_prep_save(record[c], connection) for c in COLUMNS]
    with connection.cursor() as cur:
        cur.execute(CLAIM_SQL, values)
        return cur.fetchone() is not None
