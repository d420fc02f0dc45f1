"""OpenAPI description helpers (drf-spectacular)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "molam_upgrades.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Token printed by `manage.py create_api_client`.",
        }


ERROR = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description='Error: {"ok": false, "error": "<sentence>", "details": {...}}',
)
OBJECT = OpenApiTypes.OBJECT


def errors(*codes: int) -> dict:
    return {code: ERROR for code in codes}


def query(name: str, type_=str, description: str = "", required: bool = False, enum=None) -> OpenApiParameter:
    return OpenApiParameter(
        name, type_, OpenApiParameter.QUERY, required=required, description=description, enum=enum
    )


PAGE = [
    query("limit", int, "1–500, default 50"),
    query("offset", int, "≥ 0, default 0"),
]
IDEMPOTENCY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="Replaying the same key returns the first response and writes nothing.",
)
