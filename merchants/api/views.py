"""The merchant registry for ops: list, register, read, change, rotate the webhook secret; notices."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.decorators import action

from molam_upgrades import exceptions as domain
from molam_upgrades.api.schema import errors
from molam_upgrades.api.viewsets import UUID_PATH, ListMixin, MolamViewSet
from molam_upgrades.choices import OPERATORS, READERS, Role

from .. import services
from ..filtersets import MerchantFilterSet, NoticeFilterSet
from ..models import Merchant, MerchantNotice
from .serializers import (
    MerchantCreateSerializer,
    MerchantDetailResponse,
    MerchantResponse,
    MerchantSecretResponse,
    MerchantSerializer,
    MerchantUpdateSerializer,
    NoticeSerializer,
)


def _check_high_value(principal, data: dict) -> None:
    # The flag decides whether a forced rollback needs a second person: only a payments admin
    # may set or clear it, or an operator could lift the four-eyes rule they are subject to.
    if "high_value" in data and not principal.has_any({Role.PAY_ADMIN}):
        raise domain.Forbidden("Only pay_admin may set or clear a merchant's high_value flag.")


@extend_schema_view(list=extend_schema(summary="Registered merchants"))
class MerchantViewSet(ListMixin, MolamViewSet):
    """Who the merchants are, how to reach them, and which ones are high-value."""

    queryset = Merchant.objects.order_by("name", "id")
    serializer_class = MerchantSerializer
    filterset_class = MerchantFilterSet
    results_key = "merchants"
    lookup_field = "id"
    lookup_url_kwarg = "merchant_id"
    lookup_value_regex = UUID_PATH
    roles = {
        "list": READERS,
        "retrieve": READERS,
        "create": OPERATORS,
        "partial_update": OPERATORS,
        "rotate_secret": OPERATORS,
    }

    @extend_schema(
        summary="Register a merchant (the webhook secret is shown once)",
        request=MerchantCreateSerializer,
        responses={201: MerchantSecretResponse, **errors(409)},
    )
    def create(self, request):
        data = self.validated(MerchantCreateSerializer)
        _check_high_value(self.principal, data)
        if Merchant.objects.filter(pk=data["merchant_id"]).exists():
            raise domain.Conflict(f"Merchant {data['merchant_id']} is already registered.")
        merchant = services.register_merchant(actor=self.principal.actor, **data)
        return self.respond(
            MerchantSecretResponse,
            {"ok": True, "merchant": merchant, "webhook_secret": merchant.webhook_secret},
            status=201,
        )

    @extend_schema(summary="One merchant", responses={200: MerchantDetailResponse})
    def retrieve(self, request, merchant_id):
        return self.respond(MerchantDetailResponse, {"merchant": self.get_object()})

    @extend_schema(
        summary="Change a merchant (high_value: pay_admin only)",
        request=MerchantUpdateSerializer,
        responses={200: MerchantResponse},
    )
    def partial_update(self, request, merchant_id):
        merchant = self.get_object()
        data = self.validated(MerchantUpdateSerializer)
        _check_high_value(self.principal, data)
        merchant = services.update_merchant(merchant.pk, actor=self.principal.actor, **data)
        return self.respond(MerchantResponse, {"ok": True, "merchant": merchant})

    @extend_schema(
        summary="Rotate the webhook signing secret (the new one is shown once)",
        request=None,
        responses={200: MerchantSecretResponse},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, merchant_id):
        merchant = services.rotate_webhook_secret(self.get_object().pk, actor=self.principal.actor)
        return self.respond(
            MerchantSecretResponse,
            {"ok": True, "merchant": merchant, "webhook_secret": merchant.webhook_secret},
        )


@extend_schema_view(list=extend_schema(summary="Notices sent to merchants, newest first, with delivery log"))
class NoticeViewSet(ListMixin, MolamViewSet):
    queryset = MerchantNotice.objects.order_by("-created_at").prefetch_related("deliveries")
    serializer_class = NoticeSerializer
    filterset_class = NoticeFilterSet
    results_key = "notices"
    roles = {"list": READERS}
