"""Structured logs: JSON lines, a request id on every line of a request, one event per state change."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from molam_upgrades.logging import JsonFormatter, RequestIdFilter, request_id_var
from molam_upgrades.models import Alert
from rollouts.services import auto_pause_failing_rollouts
from tests.conftest import MERCHANT_A
from tests.factories import RolloutFactory, UpgradeLogFactory

pytestmark = pytest.mark.django_db


class JsonLog:
    """Every record the root logger handles, formatted as the production JSON handler does."""

    def __init__(self):
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.addFilter(RequestIdFilter())
        self.handler.setFormatter(JsonFormatter())
        self.handler.setLevel(logging.INFO)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def events(self) -> list[str]:
        return [line["event"] for line in self.lines() if "event" in line]


@pytest.fixture
def json_log():
    log = JsonLog()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(log.handler)
    root.setLevel(logging.INFO)
    yield log
    root.removeHandler(log.handler)
    root.setLevel(previous)


def test_a_line_is_one_json_object_with_the_extra_fields(json_log):
    logger = logging.getLogger("molam.test")
    logger.info("rollout %s paused", 7, extra={"event": "rollout_paused", "rollout_id": 7})
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it broke", extra={"event": "oops"})
    first, second = json_log.lines()
    assert first["message"] == "rollout 7 paused" and first["level"] == "INFO"
    assert first["logger"] == "molam.test" and first["event"] == "rollout_paused" and first["rollout_id"] == 7
    assert first["request_id"] == "-" and first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exc_info"]


def test_every_line_of_a_request_carries_its_id_and_it_does_not_leak(json_log, cast):
    response = cast.ops.post(
        "rollouts",
        {"plugin_name": "woocommerce", "version": "4.1.0", "percentage": 10, "strategy": "random"},
        HTTP_X_REQUEST_ID="req-create-1",
    )
    assert response.status_code == 201 and response["X-Request-ID"] == "req-create-1"
    rollout_id = response.json()["rollout"]["id"]
    cast.ops.patch(f"rollouts/{rollout_id}", {"percentage": 25}, HTTP_X_REQUEST_ID="req-raise-2")
    logging.getLogger("molam.test").info("between requests")
    lines = json_log.lines()
    created = [line for line in lines if line.get("event") == "rollout_created"]
    raised = [line for line in lines if line.get("event") == "rollout_percentage_changed"]
    assert [line["request_id"] for line in created] == ["req-create-1"]
    assert [line["request_id"] for line in raised] == ["req-raise-2"]
    assert lines[-1]["message"] == "between requests" and lines[-1]["request_id"] == "-"
    assert request_id_var.get() == "-"


def test_a_generated_request_id_is_echoed_and_logged(json_log, cast):
    response = cast.ops.post(
        "rollouts", {"plugin_name": "prestashop", "version": "2.0.0", "percentage": 5, "strategy": "random"}
    )
    request_id = response["X-Request-ID"]
    assert len(request_id) == 32
    (line,) = [line for line in json_log.lines() if line.get("event") == "rollout_created"]
    assert line["request_id"] == request_id


def test_djangos_own_error_lines_carry_the_request_id(json_log, cast):
    response = cast.ops.get("/api/plugins/no-such-endpoint", HTTP_X_REQUEST_ID="req-404")
    assert response.status_code == 404
    (line,) = [line for line in json_log.lines() if line["logger"] == "django.request"]
    assert line["request_id"] == "req-404" and line["status_code"] == 404
    assert line["path"] == "/api/plugins/no-such-endpoint" and line["method"] == "GET"


def test_rollout_state_changes_are_one_line_each(json_log, cast):
    created = cast.ops.post(
        "rollouts", {"plugin_name": "woocommerce", "version": "4.1.0", "percentage": 10, "strategy": "random"}
    ).json()["rollout"]
    path = f"rollouts/{created['id']}"
    cast.ops.patch(path, {"percentage": 25})
    cast.ops.post(f"{path}/pause", {"reason": "investigating"})
    cast.ops.post(f"{path}/resume")
    cast.ops.patch(path, {"percentage": 100, "status": "completed"})
    assert json_log.events() == [
        "rollout_created",
        "rollout_percentage_changed",
        "rollout_paused",
        "rollout_resumed",
        "rollout_percentage_changed",
        "rollout_completed",
    ]
    paused = [line for line in json_log.lines() if line.get("event") == "rollout_paused"][0]
    assert paused["rollout_id"] == created["id"] and paused["actor"] == "client:ops"


def test_auto_pause_failed_rollback_and_alert_delivery_are_logged(json_log, cast, pagerduty, settings):
    RolloutFactory(plugin_name="woocommerce", version="4.1.0")
    for i in range(20):
        UpgradeLogFactory(
            plugin_name="woocommerce", to_version="4.1.0", status="failed" if i < 5 else "success"
        )
    receiver = pagerduty(statuses=[500] * 6)
    auto_pause_failing_rollouts(source="beat")
    rollback_id = cast.plugin_a.post(
        "rollback/initiate",
        {
            "merchant_id": str(MERCHANT_A),
            "plugin_name": "woocommerce",
            "from_version": "4.1.0",
            "to_version": "4.0.0",
            "trigger": "automatic",
            "reason": "smoke test failed",
        },
    ).json()["rollback_id"]
    cast.plugin_a.post(
        f"rollback/{rollback_id}/complete",
        {
            "success": False,
            "duration_ms": 900,
            "files_restored": 0,
            "db_restored": False,
            "error_message": "disk full",
        },
    )
    events = json_log.events()
    assert "rollout_auto_paused" in events
    assert "rollback_failed" in events
    assert "alert_raised" in events
    # Deliveries run on commit (eagerly here); the receiver refuses them all.
    Alert.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    from molam_upgrades.housekeeping import deliver_inline, retry_unsent_alerts

    retry_unsent_alerts(dispatch=deliver_inline)
    assert "alert_failed" in json_log.events()
    receiver.statuses.clear()
    Alert.objects.update(status="pending", attempts=0)
    retry_unsent_alerts(dispatch=deliver_inline)
    sent = [line for line in json_log.lines() if line.get("event") == "alert_sent"]
    assert sent and all("alert_id" in line and "kind" in line for line in sent)


def _python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "molam_upgrades.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=settings.BASE_DIR,
    )


LOG_ONE_LINE = """
import django, logging
django.setup()
{setup}
logging.getLogger("molam.rollouts").warning("rollout 7 paused", extra={{"event": "rollout_paused"}})
"""


def test_log_format_json_makes_the_console_write_json_lines():
    result = _python(LOG_ONE_LINE.format(setup=""), LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["event"] == "rollout_paused" and line["request_id"] == "-" and line["level"] == "WARNING"


def test_the_default_format_is_readable_text_with_the_request_id():
    result = _python(LOG_ONE_LINE.format(setup=""), LOG_FORMAT="text")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("WARNING molam.rollouts [-] rollout 7 paused")


def test_django_lines_are_written_once_even_in_debug():
    code = LOG_ONE_LINE.format(setup="").replace(
        'logging.getLogger("molam.rollouts")', 'logging.getLogger("django.request")'
    )
    result = _python(code, LOG_FORMAT="json", DEBUG="1")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "rollout 7 paused" in line]
    assert len(lines) == 1 and json.loads(lines[0])["logger"] == "django.request"


def test_the_celery_worker_keeps_the_json_lines():
    # What `celery worker` does at start-up: without the setting it would swap in its own text handler.
    setup = "from molam_upgrades.celery import app\napp.log.setup_logging_subsystem(loglevel='INFO')"
    result = _python(LOG_ONE_LINE.format(setup=setup), LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["event"] == "rollout_paused"


def test_lines_inside_a_celery_task_carry_the_task_id(json_log):
    from molam_upgrades.tasks import purge_idempotency_records
    from tests.monitoring.test_housekeeping import _idempotency_record

    _idempotency_record("old", timedelta(days=8))
    result = purge_idempotency_records.apply(task_id="task-1234")
    assert result.get() == 1
    (line,) = [line for line in json_log.lines() if line.get("event") == "idempotency_records_purged"]
    assert line["task_id"] == "task-1234" and line["task_name"].endswith("purge_idempotency_records")
