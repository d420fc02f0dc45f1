"""/readyz: database, Redis when configured, and a Sira check within the last 15 minutes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from rollouts.models import AutoCheckRun
from rollouts.services import auto_pause_failing_rollouts

pytestmark = pytest.mark.django_db


def _sira_ran(minutes_ago: float, source: str = "beat") -> AutoCheckRun:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return AutoCheckRun.objects.create(source=source, started_at=at, finished_at=at)


def test_ready_when_everything_answers_and_sira_ran_recently(client, settings):
    auto_pause_failing_rollouts(source="beat")
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["failed"] == []
    assert body["checks"]["database"] == "ok" and body["checks"]["sira"] == "ok"
    if settings.REDIS_URL:
        assert body["checks"]["redis"] == "ok"
    assert body["sira"]["age_seconds"] < 60 and body["sira"]["max_age_seconds"] == 900


def test_a_stalled_beat_makes_readyz_fail_and_says_when_sira_last_ran(client):
    run = _sira_ran(minutes_ago=37)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False and body["failed"] == ["sira"]
    assert "37 minutes ago" in body["checks"]["sira"] and "beat" in body["checks"]["sira"]
    assert body["sira"]["last_run_at"] == run.finished_at.isoformat()
    assert body["checks"]["database"] == "ok"


def test_sira_that_never_ran_is_not_ready(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["sira"] and "never run" in body["checks"]["sira"]
    assert body["sira"]["last_run_at"] is None


def test_an_unfinished_run_does_not_count(client):
    _sira_ran(minutes_ago=20)
    AutoCheckRun.objects.create(source="beat", started_at=timezone.now())  # started, crashed or running
    assert client.get("/readyz").status_code == 503


def test_any_source_counts_and_the_window_is_fifteen_minutes(client):
    _sira_ran(minutes_ago=14, source="http")
    assert client.get("/readyz").status_code == 200


def test_the_window_is_configurable(client, settings):
    settings.SIRA_MAX_AGE_SECONDS = 60
    _sira_ran(minutes_ago=2)
    assert client.get("/readyz").status_code == 503


def test_an_unreachable_redis_is_reported(client, settings):
    _sira_ran(minutes_ago=1)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["redis"]


def test_an_unreachable_database_is_reported(client, monkeypatch):
    from molam_upgrades import monitoring

    monkeypatch.setattr(monitoring, "check_database", lambda: "OperationalError: connection refused")
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"].startswith("OperationalError")
    assert "database" in body["failed"] and body["sira"] is None


def test_healthz_does_not_depend_on_sira(client):
    _sira_ran(minutes_ago=120)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503


def test_the_age_reads_naturally(client, settings):
    settings.SIRA_MAX_AGE_SECONDS = 10
    _sira_ran(minutes_ago=0.5)
    assert "30 seconds ago" in client.get("/readyz").json()["checks"]["sira"]
    AutoCheckRun.objects.all().delete()
    _sira_ran(minutes_ago=60 * 5)
    assert "5 hours ago" in client.get("/readyz").json()["checks"]["sira"]
