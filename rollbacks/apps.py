from __future__ import annotations

from django.apps import AppConfig


class RollbacksConfig(AppConfig):
    name = "rollbacks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from molam_upgrades import registry

        from . import demo, monitoring

        registry.register_api_urls("rollbacks.api.urls")
        registry.register_page_urls("rollbacks.urls")
        registry.register_metrics("rollbacks", read=monitoring.read, collect=monitoring.collect)
        registry.register_demo_data("rollbacks", demo.seed, order=30)
