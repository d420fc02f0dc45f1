"""Request count and latency per route template, method and status, in /metrics; one JSON
access line per request. (Across granian's worker processes: tests/deploy/test_stack.py.)"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings

from molam_upgrades.logging import JsonFormatter, RequestIdFilter

pytestmark = pytest.mark.django_db


def count(body: str, route: str, method: str, status: int) -> float:
    match = re.search(
        rf'^molam_http_request_duration_seconds_count\{{method="{method}",route="{re.escape(route)}",status="{status}"\}} (\S+)$',
        body,
        re.M,
    )
    return float(match.group(1)) if match else 0.0


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def test_requests_are_counted_by_route_template_method_and_status(cast, client):
    before = scrape(client)
    for rollout_id in (101, 102, 103):  # three URLs, one route
        cast.ops.post(f"rollouts/{rollout_id}/pause", {"reason": "x"})
    cast.anonymous.get("rollouts")
    after = scrape(client)
    # The router's name for the id (<pk>, <key>) is the API's business; the shape is ours.
    route = re.search(r'route="(/api/plugins/rollouts/<\w+>/pause)"', after).group(1)
    assert count(after, route, "POST", 404) - count(before, route, "POST", 404) == 3
    assert (
        count(after, "/api/plugins/rollouts", "GET", 401) - count(before, "/api/plugins/rollouts", "GET", 401)
        == 1
    )
    assert "/api/plugins/rollouts/101/pause" not in after  # never the raw path
    assert (
        f'molam_http_request_duration_seconds_bucket{{le="0.005",method="POST",route="{route}",status="404"}}'
        in after
    )


def test_unknown_methods_and_urls_cannot_create_series_at_will(client):
    client.generic("BREW", "/coffee/1")
    client.get("/no-such-page-12345/")
    body = scrape(client)
    assert 'method="BREW"' not in body and "no-such-page" not in body
    assert count(body, "<unmatched>", "other", 404) >= 1


def test_each_request_writes_one_json_access_line(client, caplog):
    caplog.set_level(logging.INFO, logger="molam.access")
    client.get("/healthz", HTTP_X_REQUEST_ID="req-access-1")
    [record] = [r for r in caplog.records if r.name == "molam.access"]
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "molam.access" and line["method"] == "GET" and line["path"] == "/healthz"
    assert line["route"] == "/healthz" and line["status"] == 200 and line["duration_ms"] >= 0
    assert "event" not in line  # "event" marks state changes (docs/monitoring.md)


def test_commands_run_where_the_multiprocess_folder_does_not_exist_yet(tmp_path):
    """``manage.py`` commands (migrate, collectstatic) run in the web service's environment before
    ``bin/start-web`` creates the folder: importing the app must not open files in it."""
    folder = tmp_path / "not-created-yet"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert not folder.exists()
