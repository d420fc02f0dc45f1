from __future__ import annotations

from django.apps import AppConfig


class MerchantsConfig(AppConfig):
    name = "merchants"
    verbose_name = "Merchants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from molam_upgrades import registry

        registry.register_api_urls("merchants.api.urls")
