"""What every admin action shares: operators only, the audit actor, domain errors as messages."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages

from .auth import user_roles
from .choices import OPERATORS
from .exceptions import DomainError


class ReadOnlyAdminMixin:
    """Rows are shown, never added, edited or deleted here: changes go through admin actions."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def admin_actor(request) -> str:
    """The audit actor of a person in the admin: the same ``user:<name>`` the dashboards record."""
    return f"user:{request.user.get_username()}"


def run_action(
    modeladmin: admin.ModelAdmin,
    request,
    objects: Iterable[Any],
    change: Callable[[Any, str], Any],
    done_message: str,
) -> int:
    """Apply ``change(obj, actor)`` (a service call) to each object; a refusal is a message, not a 500."""
    if not (user_roles(request.user) & OPERATORS):
        modeladmin.message_user(request, "Only ops_plugins and pay_admin may do this.", messages.ERROR)
        return 0
    actor = admin_actor(request)
    done = 0
    for obj in objects:
        try:
            change(obj, actor)
            done += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.WARNING)
    if done:
        modeladmin.message_user(request, done_message.format(count=done))
    return done
