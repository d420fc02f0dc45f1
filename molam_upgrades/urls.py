"""Root URLs: the REST API under /api/plugins/, schema and docs, admin, health."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import registry
from .api import errors
from .views import healthz

# Each app registers its router's URLconf in AppConfig.ready() (molam_upgrades.registry).
api_patterns = [path("", include(module)) for module in registry.api_url_modules()]

urlpatterns = [
    path("api/plugins/", include(api_patterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    re_path(r"^api/", errors.api_not_found),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # Health, readiness and Prometheus metrics.
    path("", include("molam_upgrades.monitoring_urls")),
    # Login and the ops dashboards (server-rendered pages).
    path("", include("molam_upgrades.web_urls")),
]

handler400 = "molam_upgrades.api.errors.handler400"
handler403 = "molam_upgrades.api.errors.handler403"
handler404 = "molam_upgrades.api.errors.handler404"
handler500 = "molam_upgrades.api.errors.handler500"
