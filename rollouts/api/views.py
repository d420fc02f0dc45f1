"""115ter endpoints: releases, rollouts, should-upgrade decisions and the Sira auto-check."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.response import Response

from molam_upgrades.api.schema import errors
from molam_upgrades.api.viewsets import ListMixin, MolamViewSet
from molam_upgrades.choices import AUTO_CHECKERS, DECIDERS, OPERATORS, READERS, ROLLOUT_READERS
from molam_upgrades.exceptions import NotFound
from molam_upgrades.versions import PLUGIN_NAME_RE

from .. import services
from ..choices import OPEN_STATES
from ..cohort import decide
from ..filtersets import ReleaseFilterSet, RolloutFilterSet
from ..metrics import attach_error_rates
from ..models import Release, Rollout
from .serializers import (
    AutoCheckResponse,
    DecisionQuerySerializer,
    DecisionSerializer,
    PauseSerializer,
    ReleaseCreateSerializer,
    ReleaseResponse,
    ReleaseSerializer,
    RolloutCreateSerializer,
    RolloutDetailResponse,
    RolloutListQuerySerializer,
    RolloutPatchSerializer,
    RolloutResponse,
    RolloutSerializer,
    parse_decision_query,
)

ROLLOUT_ID = OpenApiParameter("key", OpenApiTypes.INT, OpenApiParameter.PATH, description="The rollout's id.")
PLUGIN_KEY = OpenApiParameter(
    "key",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The plugin name.",
    pattern=PLUGIN_NAME_RE.pattern,
)


@extend_schema_view(list=extend_schema(summary="Registered releases"))
class ReleaseViewSet(ListMixin, MolamViewSet):
    """Releases: where to download a plugin version and how to verify it."""

    queryset = Release.objects.order_by("plugin_name", "-created_at")
    serializer_class = ReleaseSerializer
    filterset_class = ReleaseFilterSet
    results_key = "releases"
    roles = {"list": READERS, "create": OPERATORS}

    @extend_schema(
        summary="Register a downloadable release",
        description="Download URLs are https (http only for loopback hosts). When a release signing key "
        "is configured, the release must be signed and its Ed25519 signature must verify.",
        request=ReleaseCreateSerializer,
        responses={201: ReleaseResponse, **errors(409)},
    )
    def create(self, request):
        data = self.validated(ReleaseCreateSerializer)
        release = services.register_release(actor=self.principal.actor, **data)
        return self.respond(ReleaseResponse, {"ok": True, "release": release}, status=201)


class RolloutViewSet(ListMixin, MolamViewSet):
    """Rollouts. ``rollouts/<key>`` is a plugin name for GET and a rollout id for PATCH (the seed's paths)."""

    queryset = Rollout.objects.order_by("-created_at")
    serializer_class = RolloutSerializer
    filterset_class = RolloutFilterSet
    results_key = "rollouts"
    lookup_field = "key"
    roles = {
        "list": ROLLOUT_READERS,
        "retrieve": ROLLOUT_READERS,
        "create": OPERATORS,
        "partial_update": OPERATORS,
        "pause": OPERATORS,
        "resume": OPERATORS,
        "auto_check": AUTO_CHECKERS,
        "should_upgrade": DECIDERS,
    }

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        if self.action == "list" and self.validated_query(RolloutListQuerySerializer)["include_metrics"]:
            attach_error_rates(page)  # one query for the page, whatever the history
        return page

    @extend_schema(
        summary="Rollouts, newest first",
        parameters=[RolloutListQuerySerializer],
    )
    def list(self, request):
        return super().list(request)

    @extend_schema(
        summary="Start a rollout (one active or paused rollout per plugin)",
        request=RolloutCreateSerializer,
        responses={201: RolloutResponse, **errors(409)},
    )
    def create(self, request):
        serializer = self.bound(RolloutCreateSerializer)
        rollout = services.create_rollout(actor=self.principal.actor, **serializer.to_model_fields())
        return self.respond(RolloutResponse, {"ok": True, "rollout": rollout}, status=201)

    @extend_schema(
        summary="A plugin's active or paused rollout, with its metrics",
        parameters=[PLUGIN_KEY],
        responses={200: RolloutDetailResponse},
    )
    def retrieve(self, request, key: str):
        if not PLUGIN_NAME_RE.match(key):
            raise NotFound(f"No active or paused rollout for {key[:64]!r}.")
        rollout = Rollout.objects.filter(plugin_name=key, status__in=OPEN_STATES).first()
        if rollout is None:
            raise NotFound(f"No active or paused rollout for {key}.")
        attach_error_rates([rollout])
        return self.respond(RolloutDetailResponse, {"rollout": rollout})

    @extend_schema(
        summary="Change a rollout's percentage and/or status",
        parameters=[ROLLOUT_ID],
        request=RolloutPatchSerializer,
        responses={200: RolloutResponse, **errors(409)},
    )
    def partial_update(self, request, key: str):
        rollout_id = _rollout_id(key)
        data = self.validated(RolloutPatchSerializer)
        rollout = services.change_rollout(
            rollout_id,
            actor=self.principal.actor,
            percentage=data.get("percentage"),
            status=data.get("status"),
            reason=data.get("reason") or None,
        )
        return self.respond(RolloutResponse, {"ok": True, "rollout": rollout})

    @extend_schema(
        summary="Pause a rollout",
        parameters=[ROLLOUT_ID],
        request=PauseSerializer,
        responses={200: RolloutResponse, **errors(409)},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, key: str):
        rollout_id = _rollout_id(key)
        data = self.validated(PauseSerializer)
        rollout = services.pause_rollout(
            rollout_id, actor=self.principal.actor, reason=data.get("reason") or None
        )
        return self.respond(RolloutResponse, {"ok": True, "rollout": rollout})

    @extend_schema(
        summary="Resume a paused rollout",
        parameters=[ROLLOUT_ID],
        request=None,
        responses={200: RolloutResponse, **errors(409)},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, key: str):
        rollout = services.resume_rollout(_rollout_id(key), actor=self.principal.actor)
        return self.respond(RolloutResponse, {"ok": True, "rollout": rollout})

    @extend_schema(
        summary="Run the Sira auto-pause rule now",
        description="Pauses every monitored active rollout whose error rate exceeds its threshold "
        "(with at least min_sample_size reports). Alerts are queued after the run; a broker outage "
        "never fails it.",
        request=None,
        responses={200: AutoCheckResponse},
    )
    @action(detail=False, methods=["post"], url_path="auto-check")
    def auto_check(self, request):
        paused = services.auto_pause_failing_rollouts(source="http", actor=self.principal.actor)
        payload = {"ok": True, "paused_count": len(paused), "paused_rollouts": [p.as_dict() for p in paused]}
        return self.respond(AutoCheckResponse, payload)

    @extend_schema(
        summary="Should this merchant upgrade the plugin now?",
        description="The hot path every merchant's plugin calls: answered from a two-level cache.",
        parameters=[PLUGIN_KEY, DecisionQuerySerializer],
        responses={200: DecisionSerializer},
    )
    @action(detail=True, methods=["get"], url_path="should-upgrade")
    def should_upgrade(self, request, key: str):
        if not PLUGIN_NAME_RE.match(key):
            raise NotFound(f"Unknown plugin {key}.")
        params = parse_decision_query(request.query_params)
        self.check_merchant(params["merchant_id"])
        # Sent as decide() builds it (DecisionSerializer documents it; a test keeps them in step):
        # this answer is the one every merchant's plugin asks for.
        return Response(decide(plugin_name=key, **params))


def _rollout_id(key: str) -> int:
    """PATCH, pause and resume address a rollout by its numeric id."""
    if not key.isdigit() or len(key) > 18:
        raise NotFound(f"No rollout with id {key}.")
    return int(key)
