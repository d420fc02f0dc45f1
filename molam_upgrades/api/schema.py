"""OpenAPI description (drf-spectacular): the bearer scheme, the error envelope, error codes.

``MolamAutoSchema`` (the base viewset's schema) adds to every operation the error responses it
can return, all with the ``Error`` envelope component: 401/403/429 everywhere, 400 and 413 on
writes (and 409, for an Idempotency-Key reused with another body), 400 where query parameters are validated, 404 on paths naming an object. A view
declares the codes only it knows (409 …) with ``errors(409)`` in ``extend_schema``.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "molam_upgrades.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Token printed by `manage.py create_api_client`.",
        }


class ErrorSerializer(serializers.Serializer):
    """Every error of the API: ``{"ok": false, "error": "<sentence>", "details": {...}}``."""

    ok = serializers.BooleanField(help_text="Always false.")
    error = serializers.CharField(help_text="One readable sentence saying what is wrong.")
    details = serializers.DictField(
        help_text="Per-field messages for 400s (field → list of messages), "
        "retry_after_s for 429s, else empty."
    )

    class Meta:
        ref_name = "Error"


ERROR_DESCRIPTIONS = {
    400: "Invalid input (body, query parameter or Idempotency-Key).",
    401: "Missing, invalid or revoked bearer token.",
    403: "The caller's role may not do this, or a plugin credential acts for another merchant.",
    404: "No such object.",
    409: "The object's current state does not allow this (or the Idempotency-Key was used for another request).",
    413: "Request body larger than 1 MiB.",
    429: "Too many requests from this plugin credential; see Retry-After.",
}


def errors(*codes: int) -> dict:
    """``{code: Error response}`` for ``extend_schema(responses=...)``."""
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in codes}


IDEMPOTENCY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="Replaying the same key returns the first response (header Idempotent-Replayed) "
    "and writes nothing; the same key with another body is a 409. At most 255 characters.",
)


class MolamAutoSchema(AutoSchema):
    """AutoSchema plus the error responses every operation can return, and Idempotency-Key on writes."""

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            parameters.append(IDEMPOTENCY)
        return parameters

    def _error_codes(self) -> list[int]:
        codes = [401, 403, 429]
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes += [400, 409, 413]  # 409: an Idempotency-Key reused for another request
        elif self._has_query_parameters():
            codes.append(400)
        if "{" in self.path:
            codes.append(404)
        return codes

    def _has_query_parameters(self) -> bool:
        return any(p.get("in") == "query" for p in self._get_parameters())

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, response in errors(*self._error_codes()).items():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(response, str(code), direction=direction)
        return dict(sorted(responses.items()))
