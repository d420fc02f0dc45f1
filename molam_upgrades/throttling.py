"""Rate limits: merchant plugin credentials are throttled; ops and services are not.

The limit is a moving window (the same rule as DRF's ``SimpleRateThrottle``: at most N requests
in any ``duration`` seconds), kept by the ``limits`` library: on Redis one ``EVALSHA`` round
trip per request over a persistent connection, where DRF's throttle reads and rewrites the whole
request history through the cache (two round trips and a pickled list of up to N timestamps).
Without Redis (the embedded default) the window lives in the process's memory.

A limiter that cannot reach Redis lets the request through (logged): an outage of the rate-limit
store must not stop merchants from reporting upgrades or rollbacks.
"""

from __future__ import annotations

import functools
import logging
import time

from django.conf import settings
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from rest_framework.throttling import SimpleRateThrottle

from .choices import Role
from .models import ApiClient

logger = logging.getLogger("molam.throttling")


@functools.cache
def limiter() -> MovingWindowRateLimiter:
    """One limiter per process (its Redis connection pool is shared by the request threads)."""
    storage: Storage
    if settings.REDIS_URL:
        prefix = settings.CACHES["default"].get("KEY_PREFIX", "molam")
        storage = RedisStorage(settings.REDIS_URL, key_prefix=f"{prefix}:throttle", wrap_exceptions=True)
    else:
        storage = MemoryStorage()
    return MovingWindowRateLimiter(storage)


def reset() -> None:
    """Forget every window (tests; the Redis keys go with the cache's database)."""
    limiter().storage.reset()


class PluginCredentialThrottle(SimpleRateThrottle):
    """Per plugin credential (``PLUGIN_THROTTLE_RATE``, default 600/min)."""

    scope = "plugin"

    def get_cache_key(self, request, view):
        user = request.user
        if isinstance(user, ApiClient) and user.role == Role.PLUGIN:
            return self.cache_format % {"scope": self.scope, "ident": user.pk}
        return None

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.item = RateLimitItemPerSecond(self.num_requests, self.duration)
        try:
            return limiter().hit(self.item, self.key)
        except Exception:  # the store is down: let the request through
            logger.warning("rate-limit store unavailable; request not throttled", exc_info=True)
            return True

    def wait(self):
        """Seconds until the oldest request of the full window leaves it (``Retry-After``)."""
        try:
            stats = limiter().get_window_stats(self.item, self.key)
        except Exception:
            return float(self.duration)
        return max(1.0, stats.reset_time - time.time())
