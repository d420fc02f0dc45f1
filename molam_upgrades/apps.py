from __future__ import annotations

from django.apps import AppConfig


class MolamUpgradesConfig(AppConfig):
    name = "molam_upgrades"
    verbose_name = "Control plane"
    default_auto_field = "django.db.models.BigAutoField"
