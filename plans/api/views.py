"""Plan endpoints: templates, a rollout's plan, hold / release / skip / back, and the dry-run.

Roles follow SPEC's matrix: operators write; ``ops_viewer`` and ``sira`` read plans and
templates as they read rollouts. The dry-run writes nothing but lists merchant ids, so it is
for people (operators and viewers), not for services.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view

from molam_upgrades.api.schema import errors
from molam_upgrades.api.viewsets import ListMixin, MolamViewSet
from molam_upgrades.choices import OPERATORS, READERS, ROLLOUT_READERS
from molam_upgrades.exceptions import NotFound
from rollouts.models import Rollout

from .. import services
from ..models import PlanTemplate
from ..progress import progress_for
from ..simulate import simulate
from .serializers import (
    PlanAttachSerializer,
    PlanDetachedResponse,
    PlanDetailResponse,
    PlanResponse,
    PlanTemplateDetailResponse,
    PlanTemplateResponse,
    PlanTemplateSerializer,
    ReasonSerializer,
    SimulateSerializer,
    SimulationSerializer,
    TemplateCreateSerializer,
)

ROLLOUT_ID = OpenApiParameter("rollout_id", int, OpenApiParameter.PATH, description="rollout id")


@extend_schema_view(list=extend_schema(summary="Plan templates, by name"))
class PlanTemplateViewSet(ListMixin, MolamViewSet):
    """Reusable plans ("Canary 5 → 25 → 50 → 100 over 4 days")."""

    queryset = PlanTemplate.objects.order_by("name")
    serializer_class = PlanTemplateSerializer
    results_key = "templates"
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    roles = {"list": ROLLOUT_READERS, "retrieve": ROLLOUT_READERS, "create": OPERATORS}

    @extend_schema(
        summary="Save a plan template",
        request=TemplateCreateSerializer,
        responses={201: PlanTemplateResponse, **errors(409)},
    )
    def create(self, request):
        data = self.validated(TemplateCreateSerializer)
        template = services.create_template(
            actor=self.principal.actor,
            name=data["name"],
            slug=data.get("slug", ""),
            description=data.get("description", ""),
            stages=[s.as_json() for s in data["stages"]],
        )
        return self.respond(PlanTemplateResponse, {"ok": True, "template": template}, status=201)

    @extend_schema(summary="One plan template", responses={200: PlanTemplateDetailResponse})
    def retrieve(self, request, slug):
        return self.respond(PlanTemplateDetailResponse, {"template": self.get_object()})


class RolloutPlanViewSet(MolamViewSet):
    """``rollouts/<id>/plan``: the plan a rollout follows, and the operator's controls."""

    queryset = Rollout.objects.order_by("pk")
    serializer_class = PlanDetailResponse
    pagination_class = None
    roles = {
        "retrieve": ROLLOUT_READERS,
        "update": OPERATORS,
        "destroy": OPERATORS,
        "hold": OPERATORS,
        "release": OPERATORS,
        "skip": OPERATORS,
        "back": OPERATORS,
    }

    def _plan(self, rollout_id: int) -> dict:
        progress = progress_for(Rollout.objects.filter(pk=rollout_id)).get(int(rollout_id))
        if progress is None:
            if not Rollout.objects.filter(pk=rollout_id).exists():
                raise NotFound(f"No rollout with id {rollout_id}.")
            raise NotFound(f"Rollout {rollout_id} follows no plan.")
        return progress

    @extend_schema(
        summary="The rollout's plan and where it stands",
        parameters=[ROLLOUT_ID],
        responses={200: PlanDetailResponse},
    )
    def retrieve(self, request, rollout_id):
        return self.respond(PlanDetailResponse, {"plan": self._plan(rollout_id)})

    @extend_schema(
        summary="Follow a plan (a template's stages or the rollout's own), replacing any plan",
        parameters=[ROLLOUT_ID],
        request=PlanAttachSerializer,
        responses={200: PlanResponse, **errors(409)},
    )
    def update(self, request, rollout_id):
        data = self.validated(PlanAttachSerializer)
        stages = data.get("stages")
        services.attach_plan(
            int(rollout_id),
            actor=self.principal.actor,
            template=data.get("template"),
            stages=[s.as_json() for s in stages] if stages is not None else None,
            timezone_name=data.get("timezone") or "UTC",
            windows=data.get("windows") or [],
        )
        return self.respond(PlanResponse, {"ok": True, "plan": self._plan(rollout_id)})

    @extend_schema(
        summary="Stop following the plan (the rollout stays where it is)",
        parameters=[ROLLOUT_ID],
        request=None,
        responses={200: PlanDetachedResponse},
    )
    def destroy(self, request, rollout_id):
        services.detach_plan(int(rollout_id), actor=self.principal.actor)
        return self.respond(PlanDetachedResponse, {"ok": True, "rollout_id": int(rollout_id)})

    def _control(self, rollout_id, operation, **kwargs):
        operation(int(rollout_id), actor=self.principal.actor, **kwargs)
        return self.respond(PlanResponse, {"ok": True, "plan": self._plan(rollout_id)})

    @extend_schema(
        summary="Hold automatic progression (the rollout keeps its percentage)",
        parameters=[ROLLOUT_ID],
        request=ReasonSerializer,
        responses={200: PlanResponse, **errors(409)},
    )
    def hold(self, request, rollout_id):
        reason = self.validated(ReasonSerializer).get("reason", "")
        return self._control(rollout_id, services.hold_plan, reason=reason)

    @extend_schema(
        summary="Release the hold: the plan moves on when its stage is ready",
        parameters=[ROLLOUT_ID],
        request=None,
        responses={200: PlanResponse, **errors(409)},
    )
    def release(self, request, rollout_id):
        return self._control(rollout_id, services.release_plan)

    @extend_schema(
        summary="Skip the rest of the current stage: open the next one now",
        parameters=[ROLLOUT_ID],
        request=ReasonSerializer,
        responses={200: PlanResponse, **errors(409)},
    )
    def skip(self, request, rollout_id):
        reason = self.validated(ReasonSerializer).get("reason", "")
        return self._control(rollout_id, services.skip_stage, reason=reason)

    @extend_schema(
        summary="Go back one stage (the percentage returns to the previous stage's)",
        parameters=[ROLLOUT_ID],
        request=ReasonSerializer,
        responses={200: PlanResponse, **errors(409)},
    )
    def back(self, request, rollout_id):
        reason = self.validated(ReasonSerializer).get("reason", "")
        return self._control(rollout_id, services.back_stage, reason=reason)


class SimulateViewSet(MolamViewSet):
    """``POST rollouts/simulate``: the dry-run of ``POST rollouts``."""

    queryset = Rollout.objects.none()
    serializer_class = SimulationSerializer
    pagination_class = None
    roles = {"simulate": READERS}

    @extend_schema(
        operation_id="plugins_rollouts_simulate",
        summary="Dry-run: which known merchants a rollout would select (nothing is written)",
        request=SimulateSerializer,
        responses={200: SimulationSerializer},
    )
    def simulate(self, request):
        data = self.validated(SimulateSerializer)
        result = simulate(
            plugin_name=data["plugin_name"],
            version=data["version"],
            percentage=data["percentage"],
            strategy=data.get("strategy", "random"),
            target_countries=data.get("target_countries") or [],
            target_tiers=data.get("target_tiers") or [],
            sample_size=data.get("sample_size", 20),
        )
        return self.respond(SimulationSerializer, result)
