from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

urlpatterns: list = [
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
]
