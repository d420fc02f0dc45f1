"""Access rules for the server-rendered ops pages.

The pages use Django session login; the role names are Django groups (``user_roles``).
Every ops role may read a page; only operators (``ops_plugins``, ``pay_admin``) get the
controls, and any request that is not a read needs an operator. Anyone else who is logged in
gets 403; an anonymous visitor is sent to the login page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views import View

from .auth import user_roles
from .choices import OPERATORS, READERS, Role

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def can_operate(user) -> bool:
    """Whether this person may change rollouts from the dashboards."""
    return bool(user_roles(user) & OPERATORS)


def actor_for(request: HttpRequest) -> str:
    """The audit actor for a person: the same ``user:<username>`` the API records."""
    return f"user:{request.user.get_username()}"


def role_label(user) -> str:
    """The most powerful role a person holds, for the navigation bar."""
    roles = user_roles(user)
    for role in (Role.PAY_ADMIN, Role.OPS_PLUGINS, Role.OPS_VIEWER):
        if role in roles:
            return Role(role).label
    return ""


class OpsPageMixin(View):
    """Login and role checks shared by every dashboard view.

    Reads need any ops role, writes need an operator. Checked before the handler runs, so a
    viewer's POST is refused without touching any data.
    """

    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            if request.headers.get("HX-Request"):
                # A live fragment polled after the session expired: following a redirect would
                # paste the login page into the dashboard, so send the whole tab to log in.
                current = urlsplit(request.headers.get("HX-Current-URL") or "/")
                page = urlunsplit(("", "", current.path or "/", current.query, ""))
                response = HttpResponse(status=401)
                response["HX-Redirect"] = redirect_to_login(page)["Location"]
                return response
            return redirect_to_login(request.get_full_path())
        roles = user_roles(request.user)
        if not roles & READERS:
            raise PermissionDenied("Your account has no ops role. Ask a payments admin for access.")
        if request.method not in SAFE_METHODS and not roles & OPERATORS:
            raise PermissionDenied("Only ops_plugins and pay_admin may change rollouts.")
        self.can_operate = bool(roles & OPERATORS)
        return super().dispatch(request, *args, **kwargs)

    @property
    def actor(self) -> str:
        return actor_for(self.request)

    def page_context(self, **extra: Any) -> dict[str, Any]:
        """What the base layout needs: who is looking and whether they may act."""
        return {
            "can_operate": self.can_operate,
            "role_label": role_label(self.request.user),
            **extra,
        }


class HomeView(OpsPageMixin):
    """``/``: operators land on rollout control, where the work happens; viewers too."""

    def get(self, request: HttpRequest) -> HttpResponse:
        return redirect("rollout-control")
