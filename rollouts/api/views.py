"""115ter endpoints: releases, rollouts, should-upgrade decisions and the Sira auto-check."""

from __future__ import annotations

from django.http import Http404
from rest_framework import status
from rest_framework.response import Response

from molam_upgrades.api.base import MolamAPIView
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

    def get(self, request):
        queryset = self.filtered(ReleaseFilterSet, Release.objects.order_by("plugin_name", "-created_at"))
        rows, total = self.page(queryset)
        return Response({"releases": [release_data(r) for r in rows], "total": total})

    def post(self, request):
        def create():
            data = self.validated(ReleaseCreateSerializer, request.data)
            release = services.register_release(actor=self.principal.actor, **data)
            return Response({"ok": True, "release": release_data(release)}, status=status.HTTP_201_CREATED)

        return self.idempotent(create)


class RolloutCollectionView(MolamAPIView):
    """POST rollouts (start one) and GET rollouts (filters, include_metrics)."""

    roles = {"GET": ROLLOUT_READERS, "POST": OPERATORS}

    def get(self, request):
        params = self.validated_query(RolloutListQuerySerializer)
        queryset = self.filtered(RolloutFilterSet, Rollout.objects.order_by("-created_at"))
        if params["include_metrics"]:
            queryset = with_metrics(queryset)
        rows, total = self.page(queryset)
        return Response({"rollouts": [rollout_data(r) for r in rows], "total": total})

    def post(self, request):
        def create():
            serializer = self.bound(RolloutCreateSerializer, request.data)
            rollout = services.create_rollout(actor=self.principal.actor, **serializer.to_model_fields())
            return Response({"ok": True, "rollout": rollout_data(rollout)}, status=status.HTTP_201_CREATED)

        return self.idempotent(create)


class RolloutItemView(MolamAPIView):
    """GET rollouts/<plugin_name> (its active or paused rollout) and PATCH rollouts/<id>."""

    roles = {"GET": ROLLOUT_READERS, "PATCH": OPERATORS}

    def get(self, request, key: str):
        rollout = with_metrics(Rollout.objects.filter(plugin_name=key, status__in=OPEN_STATES)).first()
        if rollout is None:
            raise Http404(f"No active or paused rollout for {key}.")
        return Response({"rollout": rollout_data(rollout)})

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

    def post(self, request, rollout_id: int):
        _rollout_id(str(rollout_id))
        data = self.validated(PauseSerializer, request.data if request.data else {})
        rollout = services.pause_rollout(
            rollout_id, actor=self.principal.actor, reason=data.get("reason") or None
        )
        return Response({"ok": True, "rollout": rollout_data(rollout)})


class RolloutResumeView(MolamAPIView):
    roles = {"POST": OPERATORS}

    def post(self, request, rollout_id: int):
        _rollout_id(str(rollout_id))
        rollout = services.resume_rollout(rollout_id, actor=self.principal.actor)
        return Response({"ok": True, "rollout": rollout_data(rollout)})


class AutoCheckView(MolamAPIView):
    """POST rollouts/auto-check: Sira's HTTP entry to the auto-pause rule."""

    roles = {"POST": AUTO_CHECKERS}

    def post(self, request):
        paused = services.auto_pause_failing_rollouts(source="http", actor=self.principal.actor)
        return Response(
            {"ok": True, "paused_count": len(paused), "paused_rollouts": [p.as_dict() for p in paused]}
        )


class ShouldUpgradeView(MolamAPIView):
    """GET rollouts/<plugin_name>/should-upgrade: the hot path every merchant's plugin calls."""

    roles = {"GET": DECIDERS}

    def get(self, request, plugin_name: str):
        if not PLUGIN_NAME_RE.match(plugin_name):
            raise Http404(f"Unknown plugin {plugin_name}.")
        params = parse_decision_query(request.query_params)
        self.check_merchant(params["merchant_id"])
        return Response(decide(plugin_name=plugin_name, **params))


def _rollout_id(key: str) -> int:
    """PATCH/pause/resume address a rollout by its numeric id."""
    if not key.isdigit() or len(key) > 18:
        raise Http404(f"No rollout with id {key}.")
    rollout_id = int(key)
    if not Rollout.objects.filter(pk=rollout_id).exists():
        raise Http404(f"No rollout with id {key}.")
    return rollout_id
