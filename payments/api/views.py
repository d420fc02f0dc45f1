"""POST payment-health (plugins and ops), GET payment-health, GET canary-analyses."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view

from molam_upgrades.api.schema import errors
from molam_upgrades.api.viewsets import ListMixin, MolamViewSet
from molam_upgrades.choices import READERS, REPORTERS, ROLLOUT_READERS

from .. import services
from ..filtersets import CanaryAnalysisFilterSet, PaymentHealthFilterSet
from ..models import CanaryAnalysis, PaymentHealthReport
from .serializers import (
    CanaryAnalysisResponse,
    CanaryAnalysisSerializer,
    PaymentHealthInputSerializer,
    PaymentHealthResponse,
    PaymentHealthSerializer,
)


@extend_schema_view(list=extend_schema(summary="Hourly payment health reports, newest hour first"))
class PaymentHealthViewSet(ListMixin, MolamViewSet):
    """Checkout figures per merchant, plugin, installed version and hour.

    A plugin credential reports and reads its own merchant only (another merchant: 403,
    nothing written); ops may post for any merchant.
    """

    queryset = PaymentHealthReport.objects.order_by("-hour", "merchant_id")
    serializer_class = PaymentHealthSerializer
    filterset_class = PaymentHealthFilterSet
    results_key = "reports"
    merchant_field = "merchant_id"
    roles = {"list": READERS | REPORTERS, "create": REPORTERS}

    @extend_schema(
        summary="Report one hour of payment figures (the latest figures for an hour win)",
        request=PaymentHealthInputSerializer,
        responses={201: PaymentHealthResponse, 200: PaymentHealthResponse, **errors(409)},
    )
    def create(self, request):
        report, created = services.record_payment_health(**self.validated(PaymentHealthInputSerializer))
        return self.respond(
            PaymentHealthResponse,
            {"ok": True, "payment_health": report, "created": created},
            status=201 if created else 200,
        )


@extend_schema_view(list=extend_schema(summary="Latest canary-versus-baseline verdict of each rollout"))
class CanaryAnalysisViewSet(ListMixin, MolamViewSet):
    """What Sira's payment check last concluded for each rollout (figures included)."""

    queryset = CanaryAnalysis.objects.order_by("-computed_at")
    serializer_class = CanaryAnalysisSerializer
    filterset_class = CanaryAnalysisFilterSet
    results_key = "analyses"
    lookup_field = "rollout_id"
    lookup_value_regex = r"[0-9]+"
    roles = {"list": ROLLOUT_READERS, "retrieve": ROLLOUT_READERS}

    @extend_schema(summary="A rollout's latest canary verdict", responses={200: CanaryAnalysisResponse})
    def retrieve(self, request, rollout_id):
        return self.respond(CanaryAnalysisResponse, {"canary": self.get_object()})
