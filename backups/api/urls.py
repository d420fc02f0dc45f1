from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("backup", views.BackupCreateView.as_view(), name="backup-create"),
    path("backups", views.BackupListView.as_view(), name="backup-list"),
    path("backup/<uuid:backup_id>", views.BackupDetailView.as_view(), name="backup-detail"),
]
