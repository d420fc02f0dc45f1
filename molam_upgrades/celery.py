"""Celery application: configuration from Django settings (``CELERY_*``), tasks autodiscovered."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molam_upgrades.settings")

app = Celery("molam_upgrades")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _ensure_broker_folders() -> None:
    """The embedded filesystem broker needs its folders: a fresh clone has no ``var/`` yet."""
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


_ensure_broker_folders()
