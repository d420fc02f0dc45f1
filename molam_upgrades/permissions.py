"""The role × endpoint matrix of SPEC.md, enforced once for every API view."""

from __future__ import annotations

from rest_framework import permissions

from .auth import principal_for


class RolePermission(permissions.BasePermission):
    """Allows a request when the caller holds one of the view's roles for that method.

    Views declare ``roles = {"GET": READERS, "POST": OPERATORS}``; a method the view does not
    list is refused. Unauthenticated callers get 401 (DRF does this when this returns False).
    """

    message = "Your role is not allowed to do this."

    def has_permission(self, request, view) -> bool:
        principal = principal_for(request)
        if principal is None:
            return False
        request.principal = principal
        handler = getattr(view, request.method.lower(), None)
        if request.method.lower() not in view.http_method_names or handler is None:
            return True  # let the view answer 405 Method Not Allowed
        roles = getattr(view, "roles", {}).get(request.method)
        if roles is None and request.method in ("HEAD", "OPTIONS"):
            roles = getattr(view, "roles", {}).get("GET")
        return bool(roles) and principal.has_any(roles)
