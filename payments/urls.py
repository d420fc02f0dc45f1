"""Canary page (mounted under /ops/)."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("rollouts/<int:rollout_id>/canary", views.CanaryPageView.as_view(), name="rollout-canary"),
]
