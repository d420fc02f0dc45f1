from __future__ import annotations

from django.apps import AppConfig


class RollbacksConfig(AppConfig):
    name = "rollbacks"
    default_auto_field = "django.db.models.BigAutoField"
