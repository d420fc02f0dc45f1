"""Rate limits: merchant plugin credentials are throttled; ops and services are not."""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle

from .choices import Role
from .models import ApiClient


class PluginCredentialThrottle(SimpleRateThrottle):
    """Per plugin credential (``PLUGIN_THROTTLE_RATE``, default 600/min)."""

    scope = "plugin"

    def get_cache_key(self, request, view):
        user = request.user
        if isinstance(user, ApiClient) and user.role == Role.PLUGIN:
            return self.cache_format % {"scope": self.scope, "ident": user.pk}
        return None
