"""Backup endpoints: POST backup, PATCH backup/<id>, GET backups."""

from __future__ import annotations

import uuid

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from molam_upgrades.api.base import MolamAPIView
from molam_upgrades.api.schema import IDEMPOTENCY, OBJECT, PAGE, errors, query
from molam_upgrades.choices import READERS, REPORTERS

from .. import services
from ..filtersets import BackupFilterSet
from ..models import PluginBackup
from .serializers import BackupCreateSerializer, BackupUpdateSerializer, backup_data


class BackupCreateView(MolamAPIView):
    """POST backup: record a backup the agent took (pending, expires after retention)."""

    roles = {"POST": REPORTERS}

    @extend_schema(
        request=BackupCreateSerializer,
        parameters=[IDEMPOTENCY],
        responses={201: OBJECT, **errors(400, 401, 403, 409)},
    )
    def post(self, request):
        def create():
            data = self.validated(BackupCreateSerializer, request.data)
            self.check_merchant(data["merchant_id"])
            backup = services.create_backup(**data)
            return Response({"ok": True, "backup": backup_data(backup)}, status=status.HTTP_201_CREATED)

        return self.idempotent(create)


class BackupListView(MolamAPIView):
    """GET backups, newest first.

    A plugin credential may list its own merchant's backups: the agent looks up the latest
    completed backup of a version there.
    """

    roles = {"GET": READERS | REPORTERS}

    @extend_schema(
        parameters=[
            query("merchant_id"),
            query("plugin_name"),
            query("version"),
            query("status", enum=["pending", "completed", "failed", "expired"]),
            *PAGE,
        ],
        responses={200: OBJECT, **errors(400, 401, 403)},
    )
    def get(self, request):
        queryset = self.filtered(BackupFilterSet, PluginBackup.objects.order_by("-created_at"))
        if self.principal.is_plugin:
            requested = request.query_params.get("merchant_id")
            self.merchant_scope(uuid.UUID(requested) if requested else None)
            queryset = queryset.filter(merchant_id=self.principal.merchant_id)
        rows, total = self.page(queryset)
        return Response({"backups": [backup_data(b) for b in rows], "total": total})


class BackupDetailView(MolamAPIView):
    """PATCH backup/<backup_id>: status, size and checksum; GET one backup."""

    roles = {"PATCH": REPORTERS, "GET": READERS | REPORTERS}

    @extend_schema(operation_id="plugins_backup_detail", responses={200: OBJECT, **errors(401, 403, 404)})
    def get(self, request, backup_id):
        backup = get_object_or_404(PluginBackup, pk=backup_id)
        self.check_merchant(backup.merchant_id)
        return Response({"backup": backup_data(backup)})

    @extend_schema(
        request=BackupUpdateSerializer,
        parameters=[IDEMPOTENCY],
        responses={200: OBJECT, **errors(400, 401, 403, 404, 409)},
    )
    def patch(self, request, backup_id):
        def update():
            backup = get_object_or_404(PluginBackup, pk=backup_id)
            self.check_merchant(backup.merchant_id)
            data = self.validated(BackupUpdateSerializer, request.data)
            backup = services.update_backup(backup, **data)
            return Response({"ok": True, "backup": backup_data(backup)})

        return self.idempotent(update)
