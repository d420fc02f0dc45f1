"""Dashboard pages of the plans app (mounted under /ops/)."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("rollout-control/live", views.RolloutControlLiveView.as_view(), name="rollout-control-live"),
    path("rollout-control/preview", views.SimulatePreviewView.as_view(), name="rollout-simulate-preview"),
    path("rollouts/<int:rollout_id>", views.RolloutDetailView.as_view(), name="rollout-detail"),
    *[
        path(
            f"rollouts/<int:rollout_id>/plan/{action}",
            views.PlanActionView.as_view(action=action),
            name=f"plan-{action}",
        )
        for action in ("attach", "detach", "hold", "release", "skip", "back")
    ],
]
