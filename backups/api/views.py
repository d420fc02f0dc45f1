"""Backup endpoints: POST backup, GET backup/<id>, PATCH backup/<id>, GET backups."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view

from molam_upgrades.api.schema import errors
from molam_upgrades.api.viewsets import UUID_PATH, ListMixin, MolamViewSet
from molam_upgrades.choices import READERS, REPORTERS

from .. import services
from ..filtersets import BackupFilterSet
from ..models import PluginBackup
from .serializers import (
    BackupCreateSerializer,
    BackupDetailResponse,
    BackupResponse,
    BackupSerializer,
    BackupUpdateSerializer,
)


@extend_schema_view(list=extend_schema(summary="List backups, newest first"))
class BackupViewSet(ListMixin, MolamViewSet):
    """Backups the agent takes before an upgrade.

    A plugin credential may list and read its own merchant's backups: the agent looks up the
    latest completed backup of a version there.
    """

    queryset = PluginBackup.objects.order_by("-created_at")
    serializer_class = BackupSerializer
    filterset_class = BackupFilterSet
    results_key = "backups"
    merchant_field = "merchant_id"
    lookup_field = "backup_id"
    lookup_value_regex = UUID_PATH
    roles = {
        "list": READERS | REPORTERS,
        "retrieve": READERS | REPORTERS,
        "create": REPORTERS,
        "partial_update": REPORTERS,
    }

    @extend_schema(
        summary="Record a backup the agent took (pending, expires after retention)",
        request=BackupCreateSerializer,
        responses={201: BackupResponse},
    )
    def create(self, request):
        backup = services.create_backup(**self.validated(BackupCreateSerializer))
        return self.respond(BackupResponse, {"ok": True, "backup": backup}, status=201)

    @extend_schema(
        operation_id="plugins_backup_detail", summary="One backup", responses={200: BackupDetailResponse}
    )
    def retrieve(self, request, backup_id):
        return self.respond(BackupDetailResponse, {"backup": self.get_object()})

    @extend_schema(
        summary="Update a backup's status, size or checksum (failed and expired are final)",
        request=BackupUpdateSerializer,
        responses={200: BackupResponse, **errors(409)},
    )
    def partial_update(self, request, backup_id):
        backup = self.get_object()
        backup = services.update_backup(backup, **self.validated(BackupUpdateSerializer))
        return self.respond(BackupResponse, {"ok": True, "backup": backup})
