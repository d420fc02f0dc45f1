"""Roles and shared choices."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    PAY_ADMIN = "pay_admin", "Payments admin"
    OPS_PLUGINS = "ops_plugins", "Plugin operations"
    OPS_VIEWER = "ops_viewer", "Operations viewer"
    SIRA = "sira", "Sira risk monitor"
    PLUGIN = "plugin", "Merchant plugin"


# Named groups of roles used by the permission matrix (SPEC.md "Credentials and roles").
OPERATORS = frozenset({Role.PAY_ADMIN, Role.OPS_PLUGINS})
READERS = OPERATORS | {Role.OPS_VIEWER}
REPORTERS = OPERATORS | {Role.PLUGIN}
DECIDERS = READERS | {Role.PLUGIN}
ROLLOUT_READERS = READERS | {Role.SIRA}
AUTO_CHECKERS = OPERATORS | {Role.SIRA}


class AlertStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    NOT_CONFIGURED = "not_configured", "Not configured"


class AlertSeverity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    ERROR = "error", "Error"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"
