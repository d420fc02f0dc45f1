from __future__ import annotations

from django.apps import AppConfig


class MolamUpgradesConfig(AppConfig):
    name = "molam_upgrades"
    verbose_name = "Control plane"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .api import schema  # noqa: F401  (registers the bearer scheme for the OpenAPI schema)
