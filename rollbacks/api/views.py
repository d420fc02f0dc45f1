"""115bis endpoints: upgrade reports, rollback events, initiate/complete, pending, history, stats."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from molam_upgrades.api.base import MolamAPIView
from molam_upgrades.api.schema import IDEMPOTENCY, OBJECT, PAGE, errors, query
from molam_upgrades.choices import OPERATORS, READERS, REPORTERS

from .. import services
from ..choices import RollbackTrigger
from ..filtersets import RollbackHistoryFilterSet
from ..models import RollbackHistory
from .serializers import (
    PendingQuerySerializer,
    RollbackCompleteSerializer,
    RollbackEventSerializer,
    RollbackInitiateSerializer,
    UpgradeReportSerializer,
    rollback_data,
    upgrade_log_data,
)


class UpgradeReportView(MolamAPIView):
    """POST upgrades: a plugin reports an upgrade attempt (honours Idempotency-Key)."""

    roles = {"POST": REPORTERS}

    @extend_schema(
        request=UpgradeReportSerializer,
        parameters=[IDEMPOTENCY],
        responses={201: OBJECT, **errors(400, 401, 403, 409)},
    )
    def post(self, request):
        def create():
            data = self.validated(UpgradeReportSerializer, request.data)
            self.check_merchant(data["merchant_id"])
            log = services.record_upgrade(**data)
            return Response(
                {"ok": True, "upgrade_log": upgrade_log_data(log)}, status=status.HTTP_201_CREATED
            )

        return self.idempotent(create)


class RollbackEventView(MolamAPIView):
    """POST rollback: log a rollback event on the merchant's latest upgrade log."""

    roles = {"POST": REPORTERS}

    @extend_schema(
        request=RollbackEventSerializer,
        parameters=[IDEMPOTENCY],
        responses={200: OBJECT, **errors(400, 401, 403, 409)},
    )
    def post(self, request):
        def create():
            data = self.validated(RollbackEventSerializer, request.data)
            self.check_merchant(data["merchant_id"])
            log = services.log_rollback_event(**data)
            return Response({"ok": True, "upgrade_log": upgrade_log_data(log)})

        return self.idempotent(create)


class RollbackInitiateView(MolamAPIView):
    """POST rollback/initiate: open a rollback and get its rollback_id."""

    roles = {"POST": REPORTERS}

    @extend_schema(
        request=RollbackInitiateSerializer,
        parameters=[IDEMPOTENCY],
        responses={201: OBJECT, **errors(400, 401, 403, 409)},
    )
    def post(self, request):
        def create():
            data = self.validated(RollbackInitiateSerializer, request.data)
            self.check_merchant(data["merchant_id"])
            if data["trigger"] == RollbackTrigger.OPERATOR_FORCED and not self.principal.has_any(OPERATORS):
                raise exceptions.PermissionDenied("Only ops_plugins and pay_admin may force a rollback.")
            rollback = services.initiate_rollback(actor=self.principal.actor, **data)
            return Response(
                {
                    "ok": True,
                    "rollback_id": str(rollback.rollback_id),
                    "rollback": rollback_data(rollback),
                },
                status=status.HTTP_201_CREATED,
            )

        return self.idempotent(create)


class RollbackCompleteView(MolamAPIView):
    """POST rollback/<id>/complete: close a rollback, once."""

    roles = {"POST": REPORTERS}

    @extend_schema(
        request=RollbackCompleteSerializer,
        parameters=[IDEMPOTENCY],
        responses={200: OBJECT, **errors(400, 401, 403, 404, 409)},
    )
    def post(self, request, rollback_id):
        def complete():
            rollback = get_object_or_404(RollbackHistory, pk=rollback_id)
            self.check_merchant(rollback.merchant_id)
            data = self.validated(RollbackCompleteSerializer, request.data)
            rollback = services.complete_rollback(rollback=rollback, **data)
            return Response({"ok": True, "rollback": rollback_data(rollback)})

        return self.idempotent(complete)


class RollbackPendingView(MolamAPIView):
    """GET rollback/pending: operator-forced rollbacks waiting for the merchant's agent."""

    roles = {"GET": REPORTERS}

    @extend_schema(
        parameters=[query("merchant_id"), query("plugin_name")],
        responses={200: OBJECT, **errors(400, 401, 403)},
    )
    def get(self, request):
        params = self.validated_query(PendingQuerySerializer)
        merchant_id = self.merchant_scope(params.get("merchant_id"))
        queryset = RollbackHistory.objects.filter(
            rollback_trigger=RollbackTrigger.OPERATOR_FORCED, completed_at__isnull=True
        ).order_by("created_at")
        if merchant_id:
            queryset = queryset.filter(merchant_id=merchant_id)
        if params.get("plugin_name"):
            queryset = queryset.filter(plugin_name=params["plugin_name"])
        return Response({"rollbacks": [rollback_data(r) for r in queryset[:500]]})


class RollbackHistoryView(MolamAPIView):
    """GET rollback/history: newest first, filtered, paginated."""

    roles = {"GET": READERS}

    @extend_schema(
        parameters=[
            query("merchant_id"),
            query("plugin_name"),
            query("success", bool),
            query("trigger", enum=["automatic", "manual", "operator_forced"]),
            *PAGE,
        ],
        responses={200: OBJECT, **errors(400, 401, 403)},
    )
    def get(self, request):
        queryset = self.filtered(RollbackHistoryFilterSet, RollbackHistory.objects.order_by("-created_at"))
        rows, total = self.page(queryset)
        return Response({"rollbacks": [rollback_data(r) for r in rows], "total": total})


class RollbackStatsView(MolamAPIView):
    """GET rollback/stats: success rate by plugin, last 24 h, failed in 7 days."""

    roles = {"GET": READERS}

    @extend_schema(responses={200: OBJECT, **errors(401, 403)})
    def get(self, request):
        stats = services.rollback_stats()
        stats["kpis"] = services.kpis(stats)
        return Response(stats)
