"""``/metrics`` (Prometheus) and ``/readyz`` (readiness).

``/healthz`` (in ``views.py``) answers "is this process up and can it reach its stores";
``/readyz`` adds "is the product doing its job": each app's readiness checks, registered in
``molam_upgrades.registry`` (rollouts: the Sira auto-pause check must have finished within the
last 15 minutes, otherwise failing rollouts would keep shipping unnoticed).
"""

from __future__ import annotations

import gzip
import hmac
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from prometheus_client.exposition import gzip_accepted

from . import registry
from .api.errors import json_error
from .prometheus import exposition
from .views import check_database, check_redis

logger = logging.getLogger("molam.health")


def _bearer_matches(request: HttpRequest, expected: str) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # Constant-time comparison: the token must not leak through response timing.
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (text 0.0.4, or OpenMetrics when the scraper asks for it)."""
    if request.method not in ("GET", "HEAD"):
        response = json_error(405, f"Method {request.method} is not allowed on /metrics.")
        response["Allow"] = "GET, HEAD"
        return response
    token = settings.METRICS_TOKEN
    if token and not _bearer_matches(request, token):
        response = json_error(401, "A valid metrics bearer token is required.")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = exposition(request.headers.get("Accept", ""))
    response = HttpResponse(content_type=content_type)
    if gzip_accepted(request.headers.get("Accept-Encoding", "")):
        # Level 1: 2 MB of exposition text compresses to ~85 kB in a few ms; gzip's default (9)
        # gains a tenth more and costs ten times the CPU, on every scrape.
        body = gzip.compress(body, compresslevel=1)
        response["Content-Encoding"] = "gzip"
    response["Vary"] = "Accept, Accept-Encoding, Authorization"
    response.content = body
    return response


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, Redis (when configured) and the Sira schedule are fine; 503 otherwise."""
    checks: dict[str, str] = {}
    database_error = check_database()
    checks["database"] = database_error or "ok"
    if settings.REDIS_URL:
        checks["redis"] = check_redis() or "ok"
    bodies: dict[str, dict | None] = {}
    # Each app's checks (molam_upgrades.registry), e.g. rollouts' "sira": has the Sira
    # auto-pause check finished recently?
    for check in registry.readiness_checks():
        if database_error is not None:
            checks[check.name] = "not checked: the database is unreachable"
            result_body = None
        else:
            try:
                result = check.check()
            except Exception:  # noqa: BLE001 - a crashing check is a failed check, not a 500
                logger.warning("readiness check %s crashed", check.name, exc_info=True)
                checks[check.name] = "the check could not run"
                result_body = None
            else:
                checks[check.name] = result.message
                result_body = result.body
        if check.body_key:
            bodies[check.body_key] = result_body
    failed = [name for name, result in checks.items() if result != "ok"]
    body = {"ok": not failed, "checks": checks, "failed": failed, **bodies}
    if failed:
        logger.error(
            "readiness check failed: %s",
            ", ".join(f"{name}: {checks[name]}" for name in failed),
            extra={"event": "readiness_failed", "failed_checks": failed},
        )
    return JsonResponse(body, status=503 if failed else 200)
