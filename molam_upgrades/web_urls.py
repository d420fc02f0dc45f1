"""Login, logout and the ops dashboards (server-rendered pages under /ops/)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import registry
from .web import HomeView

urlpatterns = [
    path("", HomeView.as_view(), name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    # Django's LogoutView only accepts POST, so a link or a prefetch cannot sign anyone out.
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Each app's pages, registered in its AppConfig.ready() (molam_upgrades.registry).
    *(path("ops/", include(module)) for module in registry.page_url_modules()),
]
