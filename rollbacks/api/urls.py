from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("upgrades", views.UpgradeReportView.as_view(), name="upgrade-report"),
    path("rollback", views.RollbackEventView.as_view(), name="rollback-event"),
    path("rollback/initiate", views.RollbackInitiateView.as_view(), name="rollback-initiate"),
    path("rollback/pending", views.RollbackPendingView.as_view(), name="rollback-pending"),
    path("rollback/history", views.RollbackHistoryView.as_view(), name="rollback-history"),
    path("rollback/stats", views.RollbackStatsView.as_view(), name="rollback-stats"),
    path(
        "rollback/<uuid:rollback_id>/complete",
        views.RollbackCompleteView.as_view(),
        name="rollback-complete",
    ),
]
