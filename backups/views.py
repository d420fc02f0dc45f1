"""``/ops/backups``: the backups the merchants' agents took, filtered, with size, checksum, expiry.

Every ops role may read the page; operators also get "Mark failed" (a backup that must not be
restored), which goes through ``services.update_backup`` like the API and admin, audited.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from molam_upgrades.exceptions import DomainError
from molam_upgrades.web import OpsPageMixin

from . import services
from .choices import FINAL_STATES, BackupStatus
from .filtersets import BackupFilterSet
from .models import PluginBackup

PAGE_SIZE = 25


def format_size(size: int | None) -> str:
    """1536 → "1.5 KiB"; None → "—" (the agent reports the size once the backup completed)."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


class BackupRow:
    """A backup as the table shows it."""

    def __init__(self, backup: PluginBackup, now) -> None:
        self.backup = backup
        self.size = format_size(backup.backup_size_bytes)
        self.expired = backup.backup_status == BackupStatus.EXPIRED or backup.expires_at <= now
        self.days_left = max(0, (backup.expires_at - now).days)
        self.can_fail = backup.backup_status not in FINAL_STATES


class BackupListView(OpsPageMixin):
    """``/ops/backups``: filter by merchant, plugin and status; newest first."""

    def get(self, request: HttpRequest) -> HttpResponse:
        filterset = BackupFilterSet(request.GET, queryset=PluginBackup.objects.order_by("-created_at"))
        # An invalid filter (a malformed merchant id) shows its error and an empty table.
        rows = filterset.qs if filterset.is_valid() else PluginBackup.objects.none()
        page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
        now = timezone.now()
        params = request.GET.copy()
        params.pop("page", None)
        context: dict[str, Any] = self.page_context(
            nav="backups",
            filterset=filterset,
            filtered=any(request.GET.get(k) for k in ("merchant_id", "plugin_name", "status")),
            page=page,
            backups=[BackupRow(b, now) for b in page.object_list],
            plugin_names=list(
                PluginBackup.objects.order_by("plugin_name").values_list("plugin_name", flat=True).distinct()
            ),
            statuses=BackupStatus.choices,
            page_query=params.urlencode(),
        )
        return render(request, "backups/backup_list.html", context)


class BackupFailView(OpsPageMixin):
    """POST ``/ops/backups/<id>/fail``: operators mark a backup unusable (audited)."""

    def post(self, request: HttpRequest, backup_id) -> HttpResponse:
        backup = PluginBackup.objects.filter(pk=backup_id).first()
        if backup is None:
            raise Http404("No such backup.")
        try:
            services.update_backup(backup, actor=self.actor, backup_status=BackupStatus.FAILED)
        except DomainError as exc:
            messages.error(request, f"Backup of {backup.plugin_name} {backup.version}: {exc.message}")
        else:
            messages.success(request, f"Backup of {backup.plugin_name} {backup.version} marked as failed.")
        back = request.POST.get("next", "")
        return redirect(back if back.startswith("/ops/backups") else "backup-list")
