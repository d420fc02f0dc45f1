from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("releases", views.ReleaseCollectionView.as_view(), name="releases"),
    path("rollouts", views.RolloutCollectionView.as_view(), name="rollouts"),
    path("rollouts/auto-check", views.AutoCheckView.as_view(), name="rollouts-auto-check"),
    path("rollouts/<int:rollout_id>/pause", views.RolloutPauseView.as_view(), name="rollout-pause"),
    path("rollouts/<int:rollout_id>/resume", views.RolloutResumeView.as_view(), name="rollout-resume"),
    path(
        "rollouts/<str:plugin_name>/should-upgrade", views.ShouldUpgradeView.as_view(), name="should-upgrade"
    ),
    path("rollouts/<str:key>", views.RolloutItemView.as_view(), name="rollout-item"),
]
