from __future__ import annotations

from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payment health"
    default_auto_field = "django.db.models.BigAutoField"
