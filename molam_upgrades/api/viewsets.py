"""The one base viewset every API endpoint is built on (NetBox ``netbox/api/viewsets/``).

``MolamViewSet`` holds what each endpoint used to write by hand:

- authentication (bearer token or session, from settings) and the **role check**: ``roles``
  maps an action name to the roles allowed to call it (``RolePermission``);
- **merchant scoping**: a plugin credential's collection reads are narrowed in
  ``get_queryset()`` to its own merchant, asking for another merchant's rows is a 403, and
  single objects of another merchant are refused in ``has_object_permission`` (403, not 404:
  the seed's contract); request bodies naming a ``merchant_id`` are checked in ``validated()``;
- **filtering** through the filter backend (``filterset_class``; a bad filter value is a 400);
- **pagination** that keeps the seed's list shapes: ``{"<results_key>": [...], "total": n}``;
- **idempotency** around every writing action (``Idempotency-Key`` header, ``IdempotencyMixin``).

Each resource is then declarative::

    class BackupViewSet(CreateMixin, MolamViewSet):
        queryset = PluginBackup.objects.order_by("-created_at")
        serializer_class = BackupSerializer          # output
        filterset_class = BackupFilterSet
        results_key = "backups"
        roles = {"list": READERS | REPORTERS, "create": REPORTERS}

Services raise ``molam_upgrades.exceptions`` errors; the exception handler renders them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

import django_filters
from django.db import transaction
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions, permissions, serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.viewsets import GenericViewSet

from .. import exceptions as domain
from .. import idempotency
from ..auth import Principal, principal_for
from .schema import MolamAutoSchema

IDEMPOTENCY_HEADER = "Idempotency-Key"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UUID_PATH = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


# --- permissions ----------------------------------------------------------------------------


class RolePermission(permissions.BasePermission):
    """The role × endpoint matrix of SPEC.md: ``view.roles[view.action]``.

    An action the view does not list is refused (403); an unauthenticated caller gets 401.
    HEAD uses the roles of GET's action, OPTIONS too (refused where a route has no GET).
    """

    message = "Your role is not allowed to do this."

    def has_permission(self, request, view) -> bool:
        principal = principal_for(request)
        if principal is None:
            return False
        request.principal = principal
        action = getattr(view, "action", None)
        action_map = getattr(view, "action_map", {}) or {}
        if request.method == "OPTIONS":  # DRF names it the "metadata" action
            action = action_map.get("get")
        elif action is None and request.method.lower() not in action_map:
            return True  # let the view answer 405 Method Not Allowed
        roles = getattr(view, "roles", {}).get(action)
        return bool(roles) and principal.has_any(roles)


class MerchantObjectPermission(permissions.BasePermission):
    """A plugin credential may only touch objects of its own merchant."""

    message = "This credential may only act for its own merchant."

    def has_object_permission(self, request, view, obj) -> bool:
        field = getattr(view, "merchant_field", None)
        principal: Principal | None = getattr(request, "principal", None)
        if not field or principal is None or not principal.is_plugin:
            return True
        return getattr(obj, field) == principal.merchant_id


def refuse_blank_query_values(params, names) -> None:
    """``?limit=`` or ``?merchant_id=`` is refused (400) for every parameter in ``names``: DRF and
    django-filter would read an empty value as "not given", which the schema does not say."""
    blank = {name: ["This value may not be blank."] for name in names if params.get(name) == ""}
    if blank:
        raise exceptions.ValidationError(blank)


def _non_blank_fields(serializer_class: type[serializers.Serializer]) -> list[str]:
    return [
        name for name, field in serializer_class().fields.items() if not getattr(field, "allow_blank", False)
    ]


# --- pagination -----------------------------------------------------------------------------


class PageSerializer(serializers.Serializer):
    """``limit`` 1–500 (default 50) and ``offset`` ≥ 0."""

    limit = serializers.IntegerField(min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(min_value=0, default=0)


class SeedPagination(LimitOffsetPagination):
    """Limit/offset, validated (a bad value is a 400, not silently ignored), in the seed's shape.

    The list is published under the view's ``results_key`` next to ``total``:
    ``{"rollbacks": [...], "total": 12}``. ``MolamViewSet`` makes one subclass per results key.
    """

    default_limit = 50
    max_limit = 500
    results_key = "results"

    def paginate_queryset(self, queryset, request, view=None):
        refuse_blank_query_values(request.query_params, ("limit", "offset"))
        serializer = PageSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        self.limit = serializer.validated_data["limit"]
        self.offset = serializer.validated_data["offset"]
        self.request = request
        self.count = self.get_count(queryset)
        if self.count == 0 or self.offset > self.count:
            return []
        return list(queryset[self.offset : self.offset + self.limit])

    def get_paginated_response(self, data):
        return Response({self.results_key: data, "total": self.count})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": [self.results_key, "total"],
            "properties": {
                self.results_key: schema,
                "total": {"type": "integer", "minimum": 0, "description": "Rows matching the filters."},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": "Rows per page (default 50).",
                "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
            },
            {
                "name": "offset",
                "in": "query",
                "required": False,
                "description": "Rows to skip.",
                "schema": {"type": "integer", "minimum": 0, "default": 0},
            },
        ]


# --- idempotency ----------------------------------------------------------------------------


class KeyAlreadyUsed(Exception):
    """Another request committed the same Idempotency-Key first (the action's work is undone)."""


class IdempotencyMixin:
    """Runs every writing action once per ``Idempotency-Key``; a replay returns the first response.

    The work and the record commit together, so two concurrent requests with the same key cannot
    both write: the loser's work is rolled back and it replays. By default the record is written
    after the action, in the action's transaction. An action listed in ``records_own_key`` writes
    it itself, in the same statement as its work (the row is :meth:`key_record`), and raises
    :class:`KeyAlreadyUsed` when the key was taken: no look-up before, no transaction around.
    """

    records_own_key: frozenset[str] = frozenset()
    _idempotency: tuple[str, str, str] | None = None  # (principal, key, fingerprint) of this request

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, roles, throttles first
        method = request.method.lower()
        handler = getattr(self, method, None)
        if request.method in WRITE_METHODS and handler is not None and self.action is not None:
            setattr(self, method, lambda *a, **kw: self.idempotent(lambda: handler(*a, **kw)))

    def idempotent(self, compute: Callable[[], Response]) -> Response:
        key = self.request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if not key:
            return compute()
        if len(key) > 255:
            raise exceptions.ValidationError({IDEMPOTENCY_HEADER: ["Must be at most 255 characters."]})
        principal = self.request.principal.key
        body = json.dumps(self.request.data, sort_keys=True, default=str)
        fingerprint = hashlib.sha256(
            f"{self.request.method} {self.request.path}\n{body}".encode()
        ).hexdigest()
        self._idempotency = (principal, key, fingerprint)

        if self.action in self.records_own_key:
            try:
                return compute()
            except KeyAlreadyUsed:
                existing = idempotency.first_response(principal, key)
        else:
            existing = idempotency.first_response(principal, key)
            if existing is None:
                try:
                    with transaction.atomic():
                        response = compute()
                        if 200 <= response.status_code < 300 and not idempotency.claim(
                            self.key_record(response)
                        ):
                            raise KeyAlreadyUsed  # rolls this request's work back
                        return response
                except KeyAlreadyUsed:
                    existing = idempotency.first_response(principal, key)
        stored_fingerprint, status_code, body = existing
        if stored_fingerprint != fingerprint:
            raise domain.Conflict("This Idempotency-Key was already used with a different request.")
        return Response(body, status=status_code, headers={"Idempotent-Replayed": "true"})

    def key_record(self, response: Response) -> dict | None:
        """The Idempotency-Key record of ``response`` (None when the request has no key)."""
        if self._idempotency is None:
            return None
        principal, key, fingerprint = self._idempotency
        return idempotency.key_record(principal, key, fingerprint, response.status_code, response.data)


# --- the base viewset -----------------------------------------------------------------------


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter; an invalid filter value is a 400 (``raise_exception``), never "no filter".

    An empty value is "no filter" only for text filters: ``?merchant_id=`` or ``?status=`` is not
    a UUID or a choice, so it is refused as the schema says, not silently ignored.
    """

    raise_exception = True

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            refuse_blank_query_values(
                request.query_params,
                [
                    n
                    for n, f in filterset_class.base_filters.items()
                    if not isinstance(f, django_filters.CharFilter)
                ],
            )
        return super().filter_queryset(request, queryset, view)


class MolamViewSet(IdempotencyMixin, GenericViewSet):
    """Base of every API viewset; see the module docstring.

    Declare ``roles`` (action name → roles), ``queryset``, ``serializer_class`` (output),
    ``filterset_class``, ``results_key`` (list key of the seed's shape) and ``merchant_field``
    (``"merchant_id"`` for merchant-owned rows, ``None`` otherwise).
    """

    roles: dict[str, frozenset[str]] = {}
    merchant_field: str | None = None
    results_key: str = "results"
    permission_classes = [RolePermission, MerchantObjectPermission]
    filter_backends = [StrictFilterBackend]
    pagination_class = SeedPagination
    lookup_value_regex = "[^/]+"
    schema = MolamAutoSchema()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # One pagination class per results key, so the schema names the list key of each endpoint.
        if cls.pagination_class is not None and cls.pagination_class.results_key != cls.results_key:
            cls.pagination_class = type(
                f"{cls.results_key.title().replace('_', '')}Pagination",
                (cls.pagination_class,),
                {"results_key": cls.results_key},
            )

    @property
    def principal(self) -> Principal:
        return self.request.principal

    # -- scoping -----------------------------------------------------------------------
    def get_queryset(self):
        """Collection reads of a plugin credential see its own merchant's rows only.

        Asking explicitly for another merchant (``?merchant_id=``) is a 403, as the seed defines.
        """
        queryset = super().get_queryset()
        if self.merchant_field and getattr(self.request, "principal", None) and self.principal.is_plugin:
            requested = self.request.query_params.get(self.merchant_field)
            if requested:
                try:
                    self.check_merchant(UUID(requested))
                except ValueError:
                    pass  # not a UUID: the filterset answers 400
            queryset = queryset.filter(**{self.merchant_field: self.principal.merchant_id})
        return queryset

    def get_object(self):
        """The object named in the URL, from the *unscoped* queryset, then the object permissions.

        Another merchant's object is a 403 (``MerchantObjectPermission``), an unknown one a 404.
        """
        lookup_kwarg = self.lookup_url_kwarg or self.lookup_field
        value = self.kwargs[lookup_kwarg]
        obj = self.queryset.model._default_manager.filter(**{self.lookup_field: value}).first()
        if obj is None:
            raise domain.NotFound(f"No {self.queryset.model._meta.verbose_name} {value}.")
        self.check_object_permissions(self.request, obj)
        return obj

    def check_merchant(self, merchant_id: UUID | None) -> None:
        """A plugin credential may only act for its own merchant (403 otherwise)."""
        if self.principal.is_plugin and merchant_id != self.principal.merchant_id:
            raise domain.Forbidden(MerchantObjectPermission.message)

    # -- input -------------------------------------------------------------------------
    def validated(self, serializer_class: type[serializers.Serializer], data: Any = None, **kwargs) -> dict:
        """Validate a JSON object body (400 otherwise), then its ``merchant_id`` (403)."""
        return self.bound(serializer_class, data, **kwargs).validated_data

    def bound(self, serializer_class: type[serializers.Serializer], data: Any = None, **kwargs):
        data = self.request.data if data is None else data
        if not isinstance(data, dict):
            raise exceptions.ValidationError({"non_field_errors": ["Request body must be a JSON object."]})
        serializer = serializer_class(data=data, context=self.get_serializer_context(), **kwargs)
        serializer.is_valid(raise_exception=True)
        if self.merchant_field and self.merchant_field in serializer.validated_data:
            self.check_merchant(serializer.validated_data[self.merchant_field])
        return serializer

    def validated_query(self, serializer_class: type[serializers.Serializer]) -> dict:
        refuse_blank_query_values(self.request.query_params, _non_blank_fields(serializer_class))
        serializer = serializer_class(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    # -- output ------------------------------------------------------------------------
    def respond(
        self, serializer_class: type[serializers.Serializer], payload: Any, status: int = 200
    ) -> Response:
        """Render ``payload`` through an output serializer (what the schema publishes)."""
        return Response(serializer_class(payload, context=self.get_serializer_context()).data, status=status)

    def paginated(self, queryset) -> Response:
        """Filter, paginate and serialize a collection in the seed's list shape."""
        queryset = self.filter_queryset(queryset)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ListMixin:
    """GET on the collection: filtered, merchant-scoped, paginated."""

    def list(self, request, *args, **kwargs):
        return self.paginated(self.get_queryset())


class SeedRouter(SimpleRouter):
    """A router with the seed's paths: no trailing slash, and ``register(..., actions=)``.

    ``actions`` limits a registration to some of the viewset's actions, for the seed's paths
    that split one resource over two prefixes (``POST backup`` / ``GET backups``).
    """

    def __init__(self) -> None:
        super().__init__(trailing_slash=False)

    def register(self, prefix, viewset, basename=None, actions: set[str] | None = None):
        if actions is not None:
            viewset = type(viewset.__name__, (viewset,), {"router_actions": frozenset(actions)})
        super().register(prefix, viewset, basename)

    def get_method_map(self, viewset, method_map):
        mapping = super().get_method_map(viewset, method_map)
        allowed = getattr(viewset, "router_actions", None)
        if allowed is None:
            return mapping
        return {method: action for method, action in mapping.items() if action in allowed}


__all__ = [
    "IdempotencyMixin",
    "KeyAlreadyUsed",
    "ListMixin",
    "MerchantObjectPermission",
    "MolamViewSet",
    "RolePermission",
    "SeedPagination",
    "SeedRouter",
    "StrictFilterBackend",
    "UUID_PATH",
]
