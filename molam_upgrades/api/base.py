"""Shared API behaviour: roles, merchant binding, validation, idempotency, pagination."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ..auth import Principal
from ..exceptions import Conflict
from ..models import IdempotencyRecord

IDEMPOTENCY_HEADER = "Idempotency-Key"


class PageSerializer(serializers.Serializer):
    """``limit`` 1–500 (default 50) and ``offset`` ≥ 0."""

    limit = serializers.IntegerField(min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(min_value=0, default=0)


class _KeyAlreadyUsed(Exception):
    """Another request committed the same Idempotency-Key first."""


class MolamAPIView(APIView):
    """Base for every API view.

    ``roles`` maps an HTTP method to the roles allowed to call it (``RolePermission``).
    """

    roles: dict[str, frozenset[str]] = {}

    @property
    def principal(self) -> Principal:
        return self.request.principal

    # -- validation ---------------------------------------------------------------------
    def bound(
        self, serializer_class: type[serializers.Serializer], data: Any, **kwargs
    ) -> serializers.Serializer:
        """A validated serializer for a JSON object body (400 otherwise)."""
        if not isinstance(data, dict):
            raise exceptions.ValidationError({"non_field_errors": ["Request body must be a JSON object."]})
        serializer = serializer_class(data=data, **kwargs)
        serializer.is_valid(raise_exception=True)
        return serializer

    def validated(self, serializer_class: type[serializers.Serializer], data: Any, **kwargs) -> dict:
        return self.bound(serializer_class, data, **kwargs).validated_data

    def validated_query(self, serializer_class: type[serializers.Serializer]) -> dict:
        serializer = serializer_class(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def filtered(self, filterset_class, queryset):
        filterset = filterset_class(self.request.query_params, queryset=queryset, request=self.request)
        if not filterset.is_valid():
            raise exceptions.ValidationError(filterset.errors)
        return filterset.qs

    def page(self, queryset) -> tuple[list, int]:
        params = self.validated_query(PageSerializer)
        total = queryset.count()
        rows = list(queryset[params["offset"] : params["offset"] + params["limit"]])
        return rows, total

    # -- merchant binding ----------------------------------------------------------------
    def check_merchant(self, merchant_id: UUID | None) -> None:
        """A plugin credential may only act for its own merchant (403 otherwise)."""
        principal = self.principal
        if principal.is_plugin and merchant_id != principal.merchant_id:
            raise exceptions.PermissionDenied("This credential may only act for its own merchant.")

    def merchant_scope(self, merchant_id: UUID | None) -> UUID | None:
        """For reads: a plugin sees its own merchant only; others see what they ask for."""
        if self.principal.is_plugin:
            if merchant_id is not None:
                self.check_merchant(merchant_id)
            return self.principal.merchant_id
        return merchant_id

    # -- idempotency ---------------------------------------------------------------------
    def idempotent(self, compute: Callable[[], Response]) -> Response:
        """Run ``compute`` once per ``Idempotency-Key``; a replay returns the first response.

        The work and the record commit in one transaction, so two concurrent requests with
        the same key cannot both write: the loser's work is rolled back and it replays.
        """
        key = self.request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if not key:
            return compute()
        if len(key) > 255:
            raise exceptions.ValidationError({"Idempotency-Key": ["Must be at most 255 characters."]})
        principal = self.principal.key
        body = json.dumps(self.request.data, sort_keys=True, default=str)
        fingerprint = hashlib.sha256(
            f"{self.request.method} {self.request.path}\n{body}".encode()
        ).hexdigest()

        existing = IdempotencyRecord.objects.filter(principal=principal, key=key).first()
        if existing is None:
            try:
                with transaction.atomic():
                    response = compute()
                    if 200 <= response.status_code < 300:
                        try:
                            with transaction.atomic():
                                IdempotencyRecord.objects.create(
                                    principal=principal,
                                    key=key,
                                    request_fingerprint=fingerprint,
                                    status_code=response.status_code,
                                    response_body=json.loads(json.dumps(response.data, default=str)),
                                )
                        except IntegrityError as exc:
                            raise _KeyAlreadyUsed from exc
                    return response
            except _KeyAlreadyUsed:
                existing = IdempotencyRecord.objects.get(principal=principal, key=key)
        if existing.request_fingerprint != fingerprint:
            raise Conflict("This Idempotency-Key was already used with a different request.")
        return Response(
            existing.response_body,
            status=existing.status_code,
            headers={"Idempotent-Replayed": "true"},
        )
