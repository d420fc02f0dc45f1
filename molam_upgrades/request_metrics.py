"""Per-request metrics and the access log: one histogram sample and one log line per request.

``molam_http_request_duration_seconds{route, method, status}`` is a histogram: its ``_count``
is the request count, its ``_sum``/``_bucket`` the latency. ``route`` is the URL pattern that
answered (``/api/plugins/rollouts/<int:pk>/pause``), never the raw path, so the number of
series stays bounded whatever clients send.

granian runs several worker processes; each keeps its own numbers. With
``PROMETHEUS_MULTIPROC_DIR`` set (``bin/start-web`` sets it and empties it before granian
starts), prometheus-client writes them to memory-mapped files in that folder and any worker's
``/metrics`` adds them all up. Without it (``runserver``, tests) the numbers are this process's.
"""

from __future__ import annotations

import logging
import os
import re
import time

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

access_log = logging.getLogger("molam.access")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Methods outside this set are counted as "other": a client cannot create series at will.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"
# Upper bounds in seconds: the decision endpoint answers in about a millisecond, a dashboard
# page in tens; past 10 s something is wrong whatever the route.
DURATION_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# The numbers each web process keeps itself (these request metrics, the report writer's): used
# as-is when not in multiprocess mode, summed over the workers' files when in it.
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_DURATION = Histogram(
    "molam_http_request_duration_seconds",
    "HTTP requests by route template, method and status: count (_count) and latency in seconds.",
    ["route", "method", "status"],
    buckets=DURATION_BUCKETS,
    registry=PROCESS_REGISTRY,
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class RequestMetricsCollector(Collector):
    """Per-process metrics for ``/metrics``: every worker's, when they share a multiprocess folder."""

    def collect(self):
        path = multiprocess_dir()
        if path:
            # registry=None: read the folder on each scrape without registering anywhere.
            yield from MultiProcessCollector(None, path=path).collect()
        else:
            yield from PROCESS_REGISTRY.collect()


_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
# Per-process memos: URL pattern -> template, and (route, method, status) -> histogram child.
# Both are bounded by the URL configuration (routes) times the method set times HTTP statuses.
_TEMPLATES: dict[str, str] = {}
_CHILDREN: dict[tuple[str, str, int], object] = {}
_MEMO_LIMIT = 5_000


def _template(route: str) -> str:
    template = _TEMPLATES.get(route)
    if template is None:
        template = "/" + _NAMED_GROUP.sub(r"<\1>", route).replace("^", "").replace("$", "").replace("\\", "")
        if len(_TEMPLATES) < _MEMO_LIMIT:
            _TEMPLATES[route] = template
    return template


def route_of(request) -> str:
    """The URL pattern that answered, as a template: regex routes (DRF routers) read like path()
    ones, ``^rollouts/(?P<pk>[^/.]+)/pause$`` as ``rollouts/<pk>/pause``."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if route is None:
        return UNMATCHED_ROUTE
    return _template(route)


def _child(route: str, method: str, status: int):
    key = (route, method, status)
    child = _CHILDREN.get(key)
    if child is None:
        child = REQUEST_DURATION.labels(route=route, method=method, status=str(status))
        if len(_CHILDREN) < _MEMO_LIMIT:
            _CHILDREN[key] = child
    return child


class RequestMetricsMiddleware:
    """Times every request, records it in the histogram and writes one access log line.

    The hot path is kept small (the decision endpoint answers in well under a millisecond):
    templates and histogram children are memoised, and the access line's record is built
    directly (no caller lookup), only when the access logger is enabled.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        duration = time.perf_counter() - started
        route = route_of(request)
        method = request.method if request.method in KNOWN_METHODS else "other"
        status = response.status_code
        _child(route, method, status).observe(duration)
        if access_log.isEnabledFor(logging.INFO):
            path = request.path
            duration_ms = round(duration * 1000, 3)
            access_log.handle(
                access_log.makeRecord(
                    access_log.name,
                    logging.INFO,
                    __file__,
                    0,
                    "%s %s %s %.1fms",
                    (request.method, path, status, duration_ms),
                    None,
                    # No "event" key: that field marks state changes; access lines are told
                    # apart by their logger, molam.access.
                    extra={
                        "method": method,
                        "path": path,
                        "route": route,
                        "status": status,
                        "duration_ms": duration_ms,
                        "pid": os.getpid(),
                    },
                )
            )
        return response
