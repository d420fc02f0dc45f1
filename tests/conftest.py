"""The cast every API test uses: an ops user, a viewer, Sira, merchant A's and B's plugins."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from molam_upgrades.auth import clear_token_cache
from molam_upgrades.celery import app as celery_app
from molam_upgrades.credentials import create_api_client

# Chromium fixtures (browser, page) for the page tests.
pytest_plugins = ["tests.browser"]

MERCHANT_A = uuid.UUID("123e4567-e89b-12d3-a456-426614174000")
MERCHANT_B = uuid.UUID("9b2f7a1e-3c4d-4e5f-8a6b-7c8d9e0f1a2b")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI set) a skipped test is a failure: a missing browser, tool or database must not
    turn into a green run that tested less. Expected failures (xfail) are left alone."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which counts as a failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped at collection (pytest.importorskip, skip at module level)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which counts as a failure: {report.longrepr}"


@pytest.fixture(autouse=True, scope="session")
def _celery_eager():
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = False
    yield


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    clear_token_cache()
    yield
    clear_token_cache()


@pytest.fixture(autouse=True)
def _stop_report_writer():
    """A test that wrote reports outside a transaction started this process's report writer: stop
    it, so its connection is closed before tables are flushed or the test database dropped."""
    yield
    from rollbacks import report_writer

    report_writer.stop()


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from molam_upgrades import throttling
    from rollouts.cohort import clear_local_cache

    cache.clear()
    throttling.reset()
    clear_local_cache()
    yield
    clear_local_cache()


class Api:
    """A JSON API client holding one bearer token."""

    def __init__(self, token: str | None, name: str, merchant_id: uuid.UUID | None = None):
        self.client = APIClient()
        self.name = name
        self.merchant_id = merchant_id
        if token:
            self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def _url(self, path: str) -> str:
        return path if path.startswith("/") else f"/api/plugins/{path}"

    def get(self, path, params=None, **extra):
        return self.client.get(self._url(path), params or {}, **extra)

    def post(self, path, body=None, **extra):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body if body is not None else {})
        return self.client.post(self._url(path), data, content_type="application/json", **extra)

    def patch(self, path, body=None, **extra):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body if body is not None else {})
        return self.client.patch(self._url(path), data, content_type="application/json", **extra)

    def delete(self, path, **extra):
        return self.client.delete(self._url(path), **extra)


@dataclass
class Cast:
    admin: Api
    ops: Api
    viewer: Api
    sira: Api
    plugin_a: Api
    plugin_b: Api
    anonymous: Api

    def all(self) -> dict[str, Api]:
        return {
            "pay_admin": self.admin,
            "ops_plugins": self.ops,
            "ops_viewer": self.viewer,
            "sira": self.sira,
            "plugin_a": self.plugin_a,
            "plugin_b": self.plugin_b,
            "anonymous": self.anonymous,
        }


def make_api(name: str, role: str, merchant_id: uuid.UUID | None = None) -> Api:
    _, token = create_api_client(name=name, role=role, merchant_id=merchant_id, actor="test")
    return Api(token, name, merchant_id)


@pytest.fixture
def cast(db) -> Cast:
    return Cast(
        admin=make_api("admin", "pay_admin"),
        ops=make_api("ops", "ops_plugins"),
        viewer=make_api("viewer", "ops_viewer"),
        sira=make_api("sira", "sira"),
        plugin_a=make_api("plugin-a", "plugin", MERCHANT_A),
        plugin_b=make_api("plugin-b", "plugin", MERCHANT_B),
        anonymous=Api(None, "anonymous"),
    )


def assert_error(response, status: int) -> dict:
    """Every error is JSON: ok false, a readable sentence, details."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["ok"] is False
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)
    return body


@pytest.fixture
def uses_postgres():
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("this test needs PostgreSQL: set DATABASE_URL (make test does)")
