"""``/metrics`` (Prometheus) and ``/readyz`` (readiness, including a stalled Sira beat).

``/healthz`` (in ``views.py``) answers "is this process up and can it reach its stores";
``/readyz`` adds "is the product doing its job": the Sira auto-pause check must have finished
within the last 15 minutes, otherwise failing rollouts would keep shipping unnoticed.
"""

from __future__ import annotations

import gzip
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client.exposition import choose_encoder, gzip_accepted

from .api.errors import json_error
from .prometheus import REGISTRY
from .views import check_database, check_redis

logger = logging.getLogger("molam.health")

# Sira runs every 5 minutes; three missed runs in a row mean the scheduler is stalled.
DEFAULT_SIRA_MAX_AGE_SECONDS = 15 * 60


def sira_max_age() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "SIRA_MAX_AGE_SECONDS", DEFAULT_SIRA_MAX_AGE_SECONDS)))


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
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(REGISTRY)
    response = HttpResponse(content_type=content_type)
    if gzip_accepted(request.headers.get("Accept-Encoding", "")):
        body = gzip.compress(body)
        response["Content-Encoding"] = "gzip"
    response["Vary"] = "Accept, Accept-Encoding, Authorization"
    response.content = body
    return response


@dataclass(frozen=True)
class SiraFreshness:
    """When a Sira check last finished (any source), and whether that is recent enough.

    The one staleness rule, shared by ``/readyz`` and the rollout-control page.
    """

    last_run: datetime | None
    age_seconds: int | None
    max_age_seconds: int

    @property
    def ok(self) -> bool:
        return self.age_seconds is not None and self.age_seconds <= self.max_age_seconds

    @property
    def stale(self) -> bool:
        return not self.ok

    @property
    def minutes_ago(self) -> int | None:
        return self.age_seconds // 60 if self.age_seconds is not None else None

    @property
    def max_age_minutes(self) -> int:
        return self.max_age_seconds // 60

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "last_run_at": self.last_run.isoformat() if self.last_run else None,
            "age_seconds": self.age_seconds,
            "max_age_seconds": self.max_age_seconds,
        }


def sira_freshness(now=None) -> SiraFreshness:
    from rollouts.models import AutoCheckRun

    now = now or timezone.now()
    last = AutoCheckRun.objects.filter(finished_at__isnull=False).aggregate(last=Max("finished_at"))["last"]
    return SiraFreshness(
        last_run=last,
        age_seconds=round((now - last).total_seconds()) if last else None,
        max_age_seconds=int(sira_max_age().total_seconds()),
    )


def sira_status(now=None) -> dict:
    """``sira_freshness`` as JSON (the ``sira`` object of ``/readyz``)."""
    return sira_freshness(now).as_dict()


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} minutes ago"
    return f"{seconds // 3600} hours ago"


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, Redis (when configured) and the Sira schedule are fine; 503 otherwise."""
    checks: dict[str, str] = {}
    database_error = check_database()
    checks["database"] = database_error or "ok"
    if settings.REDIS_URL:
        checks["redis"] = check_redis() or "ok"
    sira: dict | None = None
    if database_error is None:
        try:
            sira = sira_status()
        except Exception:  # noqa: BLE001 - an unreadable run table is a failed check
            logger.warning("readiness check: Sira runs unreadable", exc_info=True)
            checks["sira"] = "the Sira run table could not be read"
        else:
            if sira["ok"]:
                checks["sira"] = "ok"
            elif sira["last_run_at"] is None:
                checks["sira"] = "the Sira auto-pause check has never run"
            else:
                checks["sira"] = (
                    f"the Sira auto-pause check last ran {_ago(sira['age_seconds'])} "
                    f"(at {sira['last_run_at']}); is Celery beat running?"
                )
    else:
        checks["sira"] = "not checked: the database is unreachable"
    failed = [name for name, result in checks.items() if result != "ok"]
    body = {"ok": not failed, "checks": checks, "failed": failed, "sira": sira}
    if failed:
        logger.error(
            "readiness check failed: %s",
            ", ".join(f"{name}: {checks[name]}" for name in failed),
            extra={"event": "readiness_failed", "failed_checks": failed},
        )
    return JsonResponse(body, status=503 if failed else 200)
