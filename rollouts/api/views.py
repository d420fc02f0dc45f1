"""115ter endpoints: releases, rollouts, should-upgrade decisions and the Sira auto-check."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from molam_upgrades.api.base import MolamAPIView
from molam_upgrades.api.schema import IDEMPOTENCY, OBJECT, PAGE, errors, query
from molam_upgrades.choices import AUTO_CHECKERS, DECIDERS, OPERATORS, READERS, ROLLOUT_READERS
from molam_upgrades.versions import PLUGIN_NAME_RE

from .. import services
from ..choices import OPEN_STATES
from ..cohort import decide
from ..filtersets import ReleaseFilterSet, RolloutFilterSet
from ..metrics import with_metrics
from ..models import Release, Rollout
from .serializers import (
    PauseSerializer,
    ReleaseCreateSerializer,
    RolloutCreateSerializer,
    RolloutListQuerySerializer,
    RolloutPatchSerializer,
    parse_decision_query,
    release_data,
    rollout_data,
)


class ReleaseCollectionView(MolamAPIView):
    """POST releases (register a downloadable version) and GET releases."""

    roles = {"GET": READERS, "POST": OPERATORS}

    @extend_schema(
        operation_id="plugins_releases_list",
        parameters=[query("plugin_name"), query("version"), *PAGE],
        responses={200: OBJECT, **errors(400, 401, 403)},
    )
    def get(self, request):
        queryset = self.filtered(ReleaseFilterSet, Release.objects.order_by("plugin_name", "-created_at"))
        rows, total = self.page(queryset)
        return Response({"releases": [release_data(r) for r in rows], "total": total})

    @extend_schema(
        request=ReleaseCreateSerializer,
        parameters=[IDEMPOTENCY],
        responses={201: OBJECT, **errors(400, 401, 403, 409)},
    )
    def post(self, request):
        def create():
            data = self.validated(ReleaseCreateSerializer, request.data)
            release = services.register_release(actor=self.principal.actor, **data)
            return Response({"ok": True, "release": release_data(release)}, status=status.HTTP_201_CREATED)

        return self.idempotent(create)


class RolloutCollectionView(MolamAPIView):
    """POST rollouts (start one) and GET rollouts (filters, include_metrics)."""

    roles = {"GET": ROLLOUT_READERS, "POST": OPERATORS}

    @extend_schema(
        operation_id="plugins_rollouts_list",
        parameters=[
            query("status", enum=["active", "paused", "completed", "rolled_back"]),
            query("plugin_name"),
            query("include_metrics", bool),
            *PAGE,
        ],
        responses={200: OBJECT, **errors(400, 401, 403)},
    )
    def get(self, request):
        params = self.validated_query(RolloutListQuerySerializer)
        queryset = self.filtered(RolloutFilterSet, Rollout.objects.order_by("-created_at"))
        if params["include_metrics"]:
            queryset = with_metrics(queryset)
        rows, total = self.page(queryset)
        return Response({"rollouts": [rollout_data(r) for r in rows], "total": total})

    @extend_schema(
        request=RolloutCreateSerializer,
        parameters=[IDEMPOTENCY],
        responses={201: OBJECT, **errors(400, 401, 403, 409)},
    )
    def post(self, request):
        def create():
            serializer = self.bound(RolloutCreateSerializer, request.data)
            rollout = services.create_rollout(actor=self.principal.actor, **serializer.to_model_fields())
            return Response({"ok": True, "rollout": rollout_data(rollout)}, status=status.HTTP_201_CREATED)

        return self.idempotent(create)


class RolloutItemView(MolamAPIView):
    """GET rollouts/<plugin_name> (its active or paused rollout) and PATCH rollouts/<id>."""

    roles = {"GET": ROLLOUT_READERS, "PATCH": OPERATORS}

    @extend_schema(
        operation_id="plugins_rollout_for_plugin",
        parameters=[OpenApiParameter("key", str, OpenApiParameter.PATH, description="plugin name")],
        responses={200: OBJECT, **errors(401, 403, 404)},
    )
    def get(self, request, key: str):
        if not PLUGIN_NAME_RE.match(key):
            raise Http404(f"No active or paused rollout for {key[:64]!r}.")
        rollout = with_metrics(Rollout.objects.filter(plugin_name=key, status__in=OPEN_STATES)).first()
        if rollout is None:
            raise Http404(f"No active or paused rollout for {key}.")
        return Response({"rollout": rollout_data(rollout)})

    @extend_schema(
        parameters=[OpenApiParameter("key", int, OpenApiParameter.PATH, description="rollout id")],
        request=RolloutPatchSerializer,
        responses={200: OBJECT, **errors(400, 401, 403, 404, 409)},
    )
    def patch(self, request, key: str):
        rollout_id = _rollout_id(key)
        data = self.validated(RolloutPatchSerializer, request.data)
        rollout = services.change_rollout(
            rollout_id,
            actor=self.principal.actor,
            percentage=data.get("percentage"),
            status=data.get("status"),
            reason=data.get("reason") or None,
        )
        return Response({"ok": True, "rollout": rollout_data(rollout)})


class RolloutPauseView(MolamAPIView):
    roles = {"POST": OPERATORS}

    @extend_schema(request=PauseSerializer, responses={200: OBJECT, **errors(400, 401, 403, 404, 409)})
    def post(self, request, rollout_id: int):
        data = self.validated(PauseSerializer, request.data if request.data else {})
        rollout = services.pause_rollout(
            rollout_id, actor=self.principal.actor, reason=data.get("reason") or None
        )
        return Response({"ok": True, "rollout": rollout_data(rollout)})


class RolloutResumeView(MolamAPIView):
    roles = {"POST": OPERATORS}

    @extend_schema(request=None, responses={200: OBJECT, **errors(401, 403, 404, 409)})
    def post(self, request, rollout_id: int):
        rollout = services.resume_rollout(rollout_id, actor=self.principal.actor)
        return Response({"ok": True, "rollout": rollout_data(rollout)})


class AutoCheckView(MolamAPIView):
    """POST rollouts/auto-check: Sira's HTTP entry to the auto-pause rule."""

    roles = {"POST": AUTO_CHECKERS}

    @extend_schema(request=None, responses={200: OBJECT, **errors(401, 403)})
    def post(self, request):
        paused = services.auto_pause_failing_rollouts(source="http", actor=self.principal.actor)
        return Response(
            {"ok": True, "paused_count": len(paused), "paused_rollouts": [p.as_dict() for p in paused]}
        )


class ShouldUpgradeView(MolamAPIView):
    """GET rollouts/<plugin_name>/should-upgrade: the hot path every merchant's plugin calls."""

    roles = {"GET": DECIDERS}

    @extend_schema(
        parameters=[
            query("merchant_id", required=True),
            query(
                "current_version",
                description="installed version; no upgrade when already on the rollout's version or newer",
            ),
            query("country", description="ISO 3166 alpha-2, for geo rollouts"),
            query("tier", description="merchant tier, for merchant_tier rollouts"),
        ],
        responses={200: OBJECT, **errors(400, 401, 403, 404)},
    )
    def get(self, request, plugin_name: str):
        if not PLUGIN_NAME_RE.match(plugin_name):
            raise Http404(f"Unknown plugin {plugin_name}.")
        params = parse_decision_query(request.query_params)
        self.check_merchant(params["merchant_id"])
        return Response(decide(plugin_name=plugin_name, **params))


def _rollout_id(key: str) -> int:
    """PATCH addresses a rollout by its numeric id (the same path GETs by plugin name)."""
    if not key.isdigit() or len(key) > 18:
        raise Http404(f"No rollout with id {key}.")
    return int(key)
