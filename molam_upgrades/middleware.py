"""Request id on every log line, the 1 MiB request body limit as a JSON 413, and the CSP header."""

from __future__ import annotations

import functools
import re
import uuid
from http import HTTPStatus

from csp.constants import HEADER
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from .api.errors import json_error
from .logging import request_id_var

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` from the caller (or makes one) and echoes it back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class BodySizeLimitMiddleware:
    """413 before the body is read when it is declared larger than the limit."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return json_error(400, "Invalid Content-Length header.")
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return json_error(
                413,
                "Request body is larger than 1 MiB.",
                {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "content_length": length},
            )
        return self.get_response(request)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, with the site-wide policy text built once.

    django-csp builds the header from the settings on every response; here that text is the same
    for every response that neither used a nonce nor carries a per-view policy (the decorators'
    ``_csp_*`` attributes), so it is built once per settings object. Anything else, and any
    report-only policy, goes through django-csp unchanged.
    """

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if (
            getattr(request, "_csp_nonce", None) is not None
            or getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
            or any(name.startswith("_csp") for name in vars(response))
        ):
            return super().process_response(request, response)
        if (
            response.status_code in (HTTPStatus.INTERNAL_SERVER_ERROR, HTTPStatus.NOT_FOUND)
            and settings.DEBUG
        ):
            return response
        policy = settings.CONTENT_SECURITY_POLICY
        prefixes = tuple(policy.get("EXCLUDE_URL_PREFIXES") or ())
        if HEADER not in response and not request.path_info.startswith(prefixes):
            response[HEADER] = _site_policy(id(policy))
        # As django-csp does: a nonce asked for after the header is written is an error.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response


@functools.lru_cache(maxsize=4)
def _site_policy(settings_id: int) -> str:
    """The policy text for the current settings (keyed by the settings object's identity, so a
    test's ``override_settings`` builds its own)."""
    return build_policy()
