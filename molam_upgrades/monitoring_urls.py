"""Readiness and Prometheus metrics (``/healthz`` stays in the root URLconf)."""

from __future__ import annotations

from django.urls import path

from .monitoring import metrics, readyz

urlpatterns = [
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
]
