from __future__ import annotations

from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from molam_upgrades import registry

        registry.register_api_urls("backups.api.urls")
        registry.register_page_urls("backups.urls")
