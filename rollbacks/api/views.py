"""115bis endpoints: upgrade reports, rollback events, initiate/complete, pending, history, stats."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from molam_upgrades.api.schema import errors
from molam_upgrades.api.viewsets import UUID_PATH, KeyAlreadyUsed, MolamViewSet, PageSerializer
from molam_upgrades.choices import OPERATORS, READERS, REPORTERS, Role
from molam_upgrades.exceptions import Forbidden, ValidationError

from .. import approvals, history, services
from ..choices import RollbackTrigger
from ..filtersets import RollbackHistoryFilterSet
from ..models import RollbackHistory, UpgradeLog
from .serializers import (
    ApprovalDecisionSerializer,
    PendingQuerySerializer,
    PendingRollbacksResponse,
    RollbackCompleteSerializer,
    RollbackEventSerializer,
    RollbackInitiatedResponse,
    RollbackInitiateSerializer,
    RollbackResponse,
    RollbackSerializer,
    RollbackStatsSerializer,
    UpgradeLogResponse,
    UpgradeReportSerializer,
)

# Pending operator-forced rollbacks per answer: an agent only ever has a handful.
PENDING_LIMIT = 500


class UpgradeReportViewSet(MolamViewSet):
    """POST upgrades: a plugin reports an upgrade attempt."""

    queryset = UpgradeLog.objects.all()
    merchant_field = "merchant_id"
    roles = {"create": REPORTERS}
    records_own_key = frozenset({"create"})

    @extend_schema(
        summary="Report an upgrade attempt",
        request=UpgradeReportSerializer,
        responses={201: UpgradeLogResponse},
    )
    def create(self, request):
        log = services.new_upgrade_report(**self.validated(UpgradeReportSerializer))
        # The response is known before the write, so the Idempotency-Key is claimed in the
        # report's own statement (records_own_key): the hottest write costs one round trip.
        response = self.respond(UpgradeLogResponse, {"ok": True, "upgrade_log": log}, status=201)
        if services.store_report(log, key_record=self.key_record(response)) is None:
            raise KeyAlreadyUsed
        return response


class RollbackViewSet(MolamViewSet):
    """Rollbacks: the event log, initiate/complete, pending, history and stats."""

    queryset = RollbackHistory.objects.order_by("-created_at")
    serializer_class = RollbackSerializer
    filterset_class = RollbackHistoryFilterSet
    results_key = "rollbacks"
    merchant_field = "merchant_id"
    lookup_field = "rollback_id"
    lookup_value_regex = UUID_PATH
    roles = {
        "create": REPORTERS,
        "initiate": REPORTERS,
        "complete": REPORTERS,
        "pending": REPORTERS,
        "history": READERS,
        "stats": READERS,
        # Four eyes: a second person, a payments admin (approvals.py refuses the requester).
        "approve": frozenset({Role.PAY_ADMIN}),
        "reject": frozenset({Role.PAY_ADMIN}),
    }

    @extend_schema(
        summary="Log a rollback event on the merchant's latest upgrade report",
        request=RollbackEventSerializer,
        responses={200: UpgradeLogResponse},
    )
    def create(self, request):
        log = services.log_rollback_event(**self.validated(RollbackEventSerializer))
        return self.respond(UpgradeLogResponse, {"ok": True, "upgrade_log": log})

    @extend_schema(
        summary="Open a rollback and get its rollback_id",
        description="An operator_forced rollback (ops_plugins, pay_admin) waits in rollback/pending for "
        "the merchant's agent; one may be pending per merchant and plugin (409).",
        request=RollbackInitiateSerializer,
        responses={201: RollbackInitiatedResponse, **errors(409)},
    )
    @action(detail=False, methods=["post"])
    def initiate(self, request):
        data = self.validated(RollbackInitiateSerializer)
        if data["trigger"] == RollbackTrigger.OPERATOR_FORCED and not self.principal.has_any(OPERATORS):
            raise Forbidden("Only ops_plugins and pay_admin may force a rollback.")
        rollback = services.initiate_rollback(actor=self.principal.actor, **data)
        payload = {"ok": True, "rollback_id": rollback.rollback_id, "rollback": rollback}
        return self.respond(RollbackInitiatedResponse, payload, status=201)

    @extend_schema(
        summary="Close a rollback, once",
        request=RollbackCompleteSerializer,
        responses={200: RollbackResponse, **errors(409)},
    )
    @action(detail=True, methods=["post"])
    def complete(self, request, rollback_id):
        rollback = self.get_object()
        data = self.validated(RollbackCompleteSerializer)
        rollback = services.complete_rollback(rollback=rollback, **data)
        return self.respond(RollbackResponse, {"ok": True, "rollback": rollback})

    @extend_schema(
        summary="Operator-forced rollbacks waiting for the merchant's agent, oldest first",
        parameters=[PendingQuerySerializer],
        responses={200: PendingRollbacksResponse},
    )
    @action(detail=False, methods=["get"])
    def pending(self, request):
        params = self.validated_query(PendingQuerySerializer)
        queryset = self.get_queryset().filter(
            rollback_trigger=RollbackTrigger.OPERATOR_FORCED, completed_at__isnull=True
        )
        # Four eyes: only rollbacks that need no approval, or are approved and not expired.
        queryset = queryset.filter(approvals.executable())
        if params.get("merchant_id"):
            queryset = queryset.filter(merchant_id=params["merchant_id"])
        if params.get("plugin_name"):
            queryset = queryset.filter(plugin_name=params["plugin_name"])
        rows = queryset.order_by("created_at")[:PENDING_LIMIT]
        return self.respond(PendingRollbacksResponse, {"rollbacks": rows})

    @extend_schema(
        summary="Rollback history, newest first",
        description="Pages by ``offset``, or by keyset with ``before=<created_at>,<rollback_id>`` of the last "
        "row already seen (the next, older page), which stays fast however deep the page.",
        parameters=[
            OpenApiParameter(
                "before",
                str,
                description="<created_at>,<rollback_id> of the last row already seen: the rows after it. "
                "Not with offset.",
                pattern=r"^\s*\d{4}-\d{2}-\d{2}[T ][0-9:.+ Z-]+,\s*[0-9A-Fa-f-]{32,36}\s*$",
            ),
        ],
        responses={200: RollbackSerializer(many=True), **errors(400)},
    )
    @action(detail=False, methods=["get"])
    def history(self, request):
        before = request.query_params.get("before")
        if before is None:
            return self.paginated(self.get_queryset().order_by(*history.ORDER))
        if "offset" in request.query_params:
            raise ValidationError("Use before or offset, not both.", details={"before": ["Not with offset."]})
        try:
            cursor = history.parse_cursor(before)
        except history.BadCursor as exc:
            raise ValidationError(str(exc), details={"before": [str(exc)]}) from None
        queryset = self.filter_queryset(self.get_queryset())
        limit = self.validated_query(PageSerializer)["limit"]
        rows, _ = history.page_before(queryset, cursor, limit)
        data = self.get_serializer(rows, many=True).data
        return Response({self.results_key: data, "total": queryset.count()})

    @extend_schema(
        summary="Success rate by plugin, last 24 h, failed in 7 days, and the seed's KPIs",
        responses={200: RollbackStatsSerializer},
    )
    @action(detail=False, methods=["get"])
    def stats(self, request):
        stats = services.rollback_stats()
        stats["kpis"] = services.kpis(stats)
        return self.respond(RollbackStatsSerializer, stats)

    @extend_schema(
        summary="Approve a forced rollback of a high-value merchant (pay_admin, not the requester)",
        request=ApprovalDecisionSerializer,
        responses={200: RollbackResponse, **errors(409)},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, rollback_id):
        data = self.validated(ApprovalDecisionSerializer)
        rollback = approvals.approve(self.get_object().pk, actor=self.principal.actor, **data)
        return self.respond(RollbackResponse, {"ok": True, "rollback": rollback})

    @extend_schema(
        summary="Reject a forced rollback of a high-value merchant (pay_admin, not the requester)",
        request=ApprovalDecisionSerializer,
        responses={200: RollbackResponse, **errors(409)},
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, rollback_id):
        data = self.validated(ApprovalDecisionSerializer)
        rollback = approvals.reject(self.get_object().pk, actor=self.principal.actor, **data)
        return self.respond(RollbackResponse, {"ok": True, "rollback": rollback})
