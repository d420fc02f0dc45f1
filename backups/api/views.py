"""Backup endpoints: POST backup, PATCH backup/<id>, GET backups."""

from __future__ import annotations

import uuid

from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.response import Response

from molam_upgrades.api.base import MolamAPIView
from molam_upgrades.choices import READERS, REPORTERS

from .. import services
from ..filtersets import BackupFilterSet
from ..models import PluginBackup
from .serializers import BackupCreateSerializer, BackupUpdateSerializer, backup_data


class BackupCollectionView(MolamAPIView):
    """POST backup (record a backup) and GET backups (newest first).

    A plugin credential may list its own merchant's backups: the agent looks up the latest
    completed backup of a version there.
    """

    roles = {"POST": REPORTERS, "GET": READERS | REPORTERS}

    def post(self, request):
        def create():
            data = self.validated(BackupCreateSerializer, request.data)
            self.check_merchant(data["merchant_id"])
            backup = services.create_backup(**data)
            return Response({"ok": True, "backup": backup_data(backup)}, status=status.HTTP_201_CREATED)

        return self.idempotent(create)

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

    def get(self, request, backup_id):
        backup = get_object_or_404(PluginBackup, pk=backup_id)
        self.check_merchant(backup.merchant_id)
        return Response({"backup": backup_data(backup)})

    def patch(self, request, backup_id):
        def update():
            backup = get_object_or_404(PluginBackup, pk=backup_id)
            self.check_merchant(backup.merchant_id)
            data = self.validated(BackupUpdateSerializer, request.data)
            backup = services.update_backup(backup, **data)
            return Response({"ok": True, "backup": backup_data(backup)})

        return self.idempotent(update)
