"""Rollback dashboard and its live fragment."""

from __future__ import annotations

from django.urls import path

from . import approval_views, views

urlpatterns = [
    path("rollback-dashboard", views.RollbackDashboardView.as_view(), name="rollback-dashboard"),
    path(
        "rollback-dashboard/live", views.RollbackDashboardLiveView.as_view(), name="rollback-dashboard-live"
    ),
    path("rollback-approvals", approval_views.RollbackApprovalsView.as_view(), name="rollback-approvals"),
    path(
        "rollbacks/<uuid:rollback_id>/approve",
        approval_views.RollbackDecisionView.as_view(decision="approve"),
        name="rollback-approve",
    ),
    path(
        "rollbacks/<uuid:rollback_id>/reject",
        approval_views.RollbackDecisionView.as_view(decision="reject"),
        name="rollback-reject",
    ),
]
