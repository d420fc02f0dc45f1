from __future__ import annotations

import io
import json

import pytest
from django.conf import settings
from django.core.management import call_command

from rollouts.models import AutoCheckRun, Rollout
from rollouts.tasks import auto_check
from tests.factories import RolloutFactory, UpgradeLogFactory

pytestmark = pytest.mark.django_db


def _failing(name="woocommerce"):
    RolloutFactory(plugin_name=name, version="4.0.0")
    for i in range(20):
        UpgradeLogFactory(plugin_name=name, to_version="4.0.0", status="failed" if i < 4 else "success")


def test_beat_schedules_the_sira_check_every_five_minutes():
    entry = settings.CELERY_BEAT_SCHEDULE["sira-auto-check"]
    assert entry["task"] == "rollouts.tasks.auto_check"
    assert entry["schedule"].total_seconds() == 300


def test_celery_task_runs_the_rule():
    _failing()
    result = auto_check.delay().get()
    assert result["paused_count"] == 1
    assert Rollout.objects.get().status == "paused"
    assert AutoCheckRun.objects.get().source == "beat"


def test_management_command_runs_the_rule():
    _failing()
    out = io.StringIO()
    call_command("auto_check", "--json", stdout=out)
    body = json.loads(out.getvalue())
    assert body["paused_count"] == 1 and body["paused_rollouts"][0]["plugin_name"] == "woocommerce"
    out = io.StringIO()
    call_command("auto_check", stdout=out)
    assert "No rollout exceeds" in out.getvalue()
