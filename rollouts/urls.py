"""Rollout-control page and its actions."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("rollout-control", views.RolloutControlView.as_view(), name="rollout-control"),
    path(
        "rollouts/<int:rollout_id>/percentage",
        views.RolloutActionView.as_view(action="percentage"),
        name="rollout-percentage",
    ),
    path(
        "rollouts/<int:rollout_id>/pause",
        views.RolloutActionView.as_view(action="pause"),
        name="rollout-pause",
    ),
    path(
        "rollouts/<int:rollout_id>/resume",
        views.RolloutActionView.as_view(action="resume"),
        name="rollout-resume",
    ),
    path(
        "rollouts/<int:rollout_id>/complete",
        views.RolloutActionView.as_view(action="complete"),
        name="rollout-complete",
    ),
]
