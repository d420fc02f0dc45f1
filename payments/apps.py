from __future__ import annotations

from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payment health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from molam_upgrades import registry

        from . import monitoring, services

        registry.register_api_urls("payments.api.urls")
        registry.register_page_urls("payments.urls")
        registry.register_metrics("payments", read=monitoring.read, collect=monitoring.collect)
        # Sira runs the canary-versus-baseline payment check in every auto-check.
        registry.register_sira_check("payment_canary", services.check_canaries)
