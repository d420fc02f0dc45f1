from __future__ import annotations

from django.apps import AppConfig


class MerchantsConfig(AppConfig):
    name = "merchants"
    verbose_name = "Merchants"
    default_auto_field = "django.db.models.BigAutoField"
