"""Keyset pagination of the rollback history: ``before=<created_at>,<rollback_id>``.

An ``offset`` page makes PostgreSQL walk past every row before it, so deep pages get slower as
the history grows. A keyset page starts where the previous one ended: newest first in
(``created_at``, ``rollback_id``) order, each page costs the rows it shows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from django.db.models import Q, QuerySet

from .models import RollbackHistory

ORDER = ("-created_at", "-rollback_id")


class BadCursor(ValueError):
    """A ``before`` value that is not ``<created_at ISO 8601 with time zone>,<rollback_id>``."""


def parse_cursor(value: str) -> tuple[datetime, UUID]:
    """``"2026-11-29T08:00:00.123456+00:00,<uuid>"`` → (created_at, rollback_id).

    A ``+`` in the time zone arrives as a space when the client did not percent-encode it.
    """
    stamp, sep, ident = value.strip().rpartition(",")
    try:
        if not sep or len(value) > 200:
            raise ValueError
        created_at = datetime.fromisoformat(stamp.strip().replace(" ", "+"))
        if created_at.tzinfo is not None:  # PostgreSQL takes offsets up to ±15:59 only
            created_at = created_at.astimezone(UTC)
        rollback_id = UUID(ident.strip())
    except (ValueError, OverflowError):
        raise BadCursor(
            "before must be <created_at>,<rollback_id> of the last row already seen "
            "(e.g. 2026-11-29T08:00:00.123456+00:00,6f1c…)."
        ) from None
    if created_at.tzinfo is None:
        raise BadCursor("before needs a time zone in its created_at (e.g. +00:00).")
    return created_at, rollback_id


def format_cursor(rollback: RollbackHistory) -> str:
    return f"{rollback.created_at.isoformat()},{rollback.rollback_id}"


def page_before(
    queryset: QuerySet, cursor: tuple[datetime, UUID] | None, limit: int
) -> tuple[list, str | None]:
    """Up to ``limit`` rows older than ``cursor`` (the newest when None), and the cursor of the
    page after them (None on the last page)."""
    if cursor is not None:
        created_at, rollback_id = cursor
        queryset = queryset.filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, rollback_id__lt=rollback_id)
        )
    rows = list(queryset.order_by(*ORDER)[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (format_cursor(rows[-1]) if more and rows else None)
