"""Domain errors: what services raise when an operation cannot be done.

Services, admin actions, dashboards, commands and Celery tasks all speak these; none of them
knows HTTP. The API's exception handler (``molam_upgrades.api.errors.exception_handler``) maps
each one to the JSON envelope ``{"ok": false, "error": "<message>", "details": {...}}`` with
its ``status_code``; dashboards and the admin show ``message`` as it is.

    from molam_upgrades.exceptions import Conflict, NotFound
    raise Conflict("This rollback was already completed.")
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a service raises on purpose (never a 500)."""

    status_code = 400
    default_message = "The request cannot be done."
    code = "error"

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ValidationError(DomainError):
    """400: the input breaks a rule a serializer cannot see (e.g. a signature that does not verify)."""

    status_code = 400
    default_message = "Invalid input."
    code = "invalid"


class Forbidden(DomainError):
    """403: the caller may not do this (wrong role for this variant, another merchant's object)."""

    status_code = 403
    default_message = "Your role is not allowed to do this."
    code = "forbidden"


class NotFound(DomainError):
    """404: the object does not exist (or is not visible to the caller)."""

    status_code = 404
    default_message = "Not found."
    code = "not_found"


class Conflict(DomainError):
    """409: the request is valid but the object's current state does not allow it."""

    status_code = 409
    default_message = "The request conflicts with the current state."
    code = "conflict"


class InvalidTransition(Conflict):
    """409: a state move the object's lifecycle forbids (e.g. resuming a completed rollout)."""

    code = "invalid_transition"


class ServiceUnavailable(DomainError):
    """503: the write could not be confirmed in time; the caller may retry (same Idempotency-Key)."""

    status_code = 503
    default_message = "The service cannot confirm this write right now; retry."
    code = "unavailable"


__all__ = [
    "Conflict",
    "DomainError",
    "Forbidden",
    "InvalidTransition",
    "NotFound",
    "ServiceUnavailable",
    "ValidationError",
]
