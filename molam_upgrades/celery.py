"""Celery application: configuration from Django settings (``CELERY_*``), tasks autodiscovered."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molam_upgrades.settings")

app = Celery("molam_upgrades")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
