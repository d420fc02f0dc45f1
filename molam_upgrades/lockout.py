"""Login lockout (django-axes) for the two places people sign in: ``/login/`` and ``/admin/login/``."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class LoginLockoutBackend(AxesStandaloneBackend):
    """Refuses any login, right password included, for a username locked out by failed attempts.

    Only logins over HTTP are guarded: ``authenticate()`` without a request (a management
    command, a shell, the test client's ``login()``) is nobody guessing from outside, and axes
    would otherwise refuse it with an exception.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
