"""Timing a database read-write in a transaction that is then rolled back (the next run sees the same data)."""

from __future__ import annotations

import time

from django.db import transaction


class _Undo(Exception):
    pass


def timed(run) -> tuple[float, object]:
    """Run ``run()`` inside a transaction, time it, roll it back; return (seconds, result)."""
    result = None
    started = time.perf_counter()
    try:
        with transaction.atomic():
            result = run()
            elapsed = time.perf_counter() - started
            raise _Undo
    except _Undo:
        pass
    return elapsed, result
