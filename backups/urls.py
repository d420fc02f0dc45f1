"""The backups page and its one action."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("backups", views.BackupListView.as_view(), name="backup-list"),
    path("backups/<uuid:backup_id>/fail", views.BackupFailView.as_view(), name="backup-fail"),
]
