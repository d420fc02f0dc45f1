"""One error format for the whole API: ``{"ok": false, "error": "...", "details": {...}}``.

``exception_handler`` is the one place errors become HTTP: domain errors raised by services
(``molam_upgrades.exceptions``), DRF's own (validation, authentication, throttling) and the few
Django ones that can escape a view.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DataError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response

from ..exceptions import DomainError

logger = logging.getLogger("molam.api")


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is larger than 1 MiB."
    default_code = "payload_too_large"


def error_body(message: str, details: dict | None = None) -> dict:
    return {"ok": False, "error": message, "details": details or {}}


def _first_message(detail, path: str = "") -> tuple[str, str]:
    """The first (field path, message) of a DRF error tree."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = key if key != "non_field_errors" else ""
            return _first_message(value, f"{path}.{field}" if path and field else (field or path))
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, (dict, list)):
            return _first_message(first, path)
        return path, str(first)
    return path, str(detail)


def validation_message(detail) -> str:
    field, message = _first_message(detail)
    message = message.rstrip(".")
    return f"Invalid {field}: {message}." if field else f"{message}."


def _as_details(detail) -> dict:
    if isinstance(detail, dict):
        return detail
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {}


def exception_handler(exc, context):
    """DRF exception handler producing the project's error format; never an HTML page."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) if str(exc) else "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, DataError):
        # A value the database cannot store (e.g. a NUL byte) slipped past validation: still bad input.
        logger.warning("database refused a value: %s", exc)
        exc = exceptions.ValidationError({"non_field_errors": ["A value in the request cannot be stored."]})

    if isinstance(exc, exceptions.ValidationError):
        body = error_body(validation_message(exc.detail), _as_details(exc.detail))
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, exceptions.ParseError):
        return Response(
            error_body(f"Malformed JSON body: {exc.detail}".rstrip(".") + ".", {}),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        detail = exc.detail
        if isinstance(detail, (dict, list)):
            message, details = validation_message(detail), _as_details(detail)
        else:
            message, details = str(detail), {}
        if isinstance(exc, exceptions.Throttled):
            message = "Too many requests: slow down and retry later."
            details = {"retry_after_s": int(exc.wait) if exc.wait else None}
        if isinstance(exc, exceptions.UnsupportedMediaType):
            message = "Request body must be JSON."
        return Response(error_body(message, details), status=exc.status_code, headers=headers)

    logger.exception("Unhandled API error", exc_info=exc)
    return Response(error_body("Internal server error."), status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def json_error(status_code: int, message: str, details: dict | None = None) -> JsonResponse:
    """The same error body for plain Django views and middleware."""
    return JsonResponse(error_body(message, details), status=status_code)


@csrf_exempt  # a POST to an unknown API path is a JSON 404, never the CSRF page
def api_not_found(request, *args, **kwargs):
    return json_error(404, f"No API endpoint at {request.path}.")


def handler404(request, exception=None):
    if request.path.startswith("/api/"):
        return api_not_found(request)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return json_error(500, "Internal server error.")
    from django.views.defaults import server_error

    return server_error(request)


def handler400(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(400, "Bad request.")
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler403(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(403, "Forbidden.")
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)
