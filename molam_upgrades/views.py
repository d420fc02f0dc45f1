"""Health endpoint."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger("molam.health")


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        # The answer names the failed check only; the exception (hosts, ports) goes to the log.
        logger.warning("health check: database unreachable", exc_info=True)
        return "unreachable"
    return None


def check_redis() -> str | None:
    if not settings.REDIS_URL:
        return None
    try:
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()
    except Exception:  # noqa: BLE001
        logger.warning("health check: redis unreachable", exc_info=True)
        return "unreachable"
    return None


@never_cache
def healthz(request):
    """200 when the database (and Redis, when configured) answer; 503 otherwise."""
    checks = {"database": check_database()}
    if settings.REDIS_URL:
        checks["redis"] = check_redis()
    ok = all(error is None for error in checks.values())
    body = {
        "ok": ok,
        "checks": {name: ("ok" if error is None else error) for name, error in checks.items()},
    }
    if not ok:
        logger.error("health check failed: %s", body["checks"])
    return JsonResponse(body, status=200 if ok else 503)
