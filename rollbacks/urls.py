"""Rollback dashboard and its live fragment."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("rollback-dashboard", views.RollbackDashboardView.as_view(), name="rollback-dashboard"),
    path(
        "rollback-dashboard/live", views.RollbackDashboardLiveView.as_view(), name="rollback-dashboard-live"
    ),
]
