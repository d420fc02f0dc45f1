"""Session idle timeout: a session ends ``SESSION_IDLE_TIMEOUT`` seconds after its last request.

``SESSION_COOKIE_AGE`` is the idle timeout; each request renews it by saving the session, but at
most once per ``RENEW_EVERY_SECONDS``, so the dashboards' 5-second live refresh does not write
the session table on every poll (Django's ``SESSION_SAVE_EVERY_REQUEST`` would).
"""

from __future__ import annotations

import time

RENEW_EVERY_SECONDS = 60
RENEWED_AT_KEY = "_idle_renewed_at"


class SessionIdleRenewalMiddleware:
    """Marks a non-empty session modified when its expiry is more than a minute old.

    Sits after ``SessionMiddleware``, which then saves it and re-sends the cookie with a fresh
    max-age. Anonymous visitors without a session are left alone (no session is created).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is None or session.modified or session.is_empty():
            return response
        now = int(time.time())
        if now - int(session.get(RENEWED_AT_KEY, 0)) >= RENEW_EVERY_SECONDS:
            session[RENEWED_AT_KEY] = now
        return response
