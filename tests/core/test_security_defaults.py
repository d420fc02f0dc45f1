"""Production defaults, each checked as a deployment that sets nothing more would get them.

Settings are read once per process, so these run Django in a subprocess with a clean
environment (the suite itself runs with DEBUG=1, pyproject.toml)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from molam_upgrades.models import ApiClient, hash_token
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]
PROD = {
    "SECRET_KEY": "test-only-9f3c1a7e5b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5",
    "METRICS_TOKEN": "metrics-secret",
}


def django(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Runs ``code`` after django.setup() with only ``env`` set (plus PATH); its stdout is JSON."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "molam_upgrades.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MOLAM_VAR_DIR": str(tmp_path / "var"),
        "STATIC_ROOT": str(tmp_path / "static"),
        **env,
    }
    script = "import django, json\ndjango.setup()\n" + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def answers(tmp_path: Path, requests: list[tuple[str, dict]], **env: str) -> list[dict]:
    """Status, headers and body start of each (path, extra) request, from the Django test client."""
    code = f"""
    from django.core.management import call_command
    from django.test import Client
    call_command("collectstatic", interactive=False, verbosity=0)  # the image build step
    client = Client(raise_request_exception=False)
    out = []
    for path, extra in {requests!r}:
        r = client.get(path, **extra)
        out.append({{"status": r.status_code, "location": r.get("Location"), "body": r.content[:3000].decode(errors="replace")}})
    print(json.dumps(out))
    """
    result = django(code, tmp_path, **env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_debug_a_secret_key_is_required(tmp_path):
    result = django("print(1)", tmp_path)
    assert result.returncode != 0
    assert "Set the SECRET_KEY environment variable" in result.stderr


def test_without_debug_a_metrics_token_is_required(tmp_path):
    result = django("print(1)", tmp_path, SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "Set the METRICS_TOKEN environment variable" in result.stderr


def test_debug_is_off_unless_set_and_the_deploy_checks_pass(tmp_path):
    code = """
    from django.conf import settings
    print(json.dumps({
        "debug": settings.DEBUG,
        "ssl_redirect": settings.SECURE_SSL_REDIRECT,
        "proxy_header": getattr(settings, "SECURE_PROXY_SSL_HEADER", None),
        "messages": settings.MESSAGE_STORAGE,
        "session_age": settings.SESSION_COOKIE_AGE,
        "static": settings.STORAGES["staticfiles"]["BACKEND"],
        "hsts": settings.SECURE_HSTS_SECONDS,
    }))
    """
    result = django(code, tmp_path, **PROD)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values == {
        "debug": False,
        "ssl_redirect": True,
        "proxy_header": None,
        "messages": "django.contrib.messages.storage.session.SessionStorage",
        "session_age": 1800,
        "static": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "hsts": 31536000,
    }
    check = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **PROD, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "no issues" in check.stdout


def test_an_unknown_page_is_not_the_technical_404(tmp_path):
    [page] = answers(tmp_path, [("/no-such-page/", {"secure": True})], **PROD)
    assert page["status"] == 404
    assert "URLconf" not in page["body"] and "DEBUG = True" not in page["body"]


def test_schema_docs_and_metrics_need_credentials_in_production(tmp_path):
    schema, docs, metrics, wrong_token = answers(
        tmp_path,
        [
            ("/api/schema/", {"secure": True}),
            ("/api/docs/", {"secure": True}),
            ("/metrics", {"secure": True}),
            ("/metrics", {"secure": True, "HTTP_AUTHORIZATION": "Bearer not-the-token"}),
        ],
        **PROD,
    )
    assert schema["status"] in (401, 403) and "openapi" not in schema["body"]
    assert docs["status"] in (401, 403) and "swagger" not in docs["body"].lower()
    assert metrics["status"] == 401 and wrong_token["status"] == 401


def test_a_forwarded_proto_header_is_ignored_unless_the_proxy_is_trusted(tmp_path):
    forged = [("/api/plugins/rollouts", {"HTTP_X_FORWARDED_PROTO": "https"})]
    [untrusted] = answers(tmp_path, forged, **PROD)
    assert untrusted["status"] == 301 and untrusted["location"].startswith("https://")
    [trusted] = answers(tmp_path, forged, **PROD, TRUST_PROXY_HEADERS="1")
    assert trusted["status"] == 401  # taken as HTTPS: on to the API, which asks for a token


def test_make_run_binds_the_development_server_to_loopback_with_debug_on():
    run = (ROOT / "bin" / "run").read_text()
    assert '"${HOST:-127.0.0.1}:$PORT"' in run and "0.0.0.0" not in run
    makefile = (ROOT / "Makefile").read_text()
    assert "DEBUG ?= 1\nexport DEBUG" in makefile


@pytest.mark.django_db
def test_a_failed_health_check_names_the_check_not_the_exception(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["redis"] == "unreachable"
    assert "Error" not in response.content.decode() and "127.0.0.1:1" not in response.content.decode()


@pytest.mark.django_db
def test_the_token_of_a_credential_created_in_the_admin_never_travels_in_a_cookie(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, username="root"))
    response = client.post(
        "/admin/molam_upgrades/apiclient/add/", {"name": "sira-prod", "role": "sira", "is_active": "on"}
    )
    assert response.status_code == 302
    assert "messages" not in response.cookies  # kept in the session, server-side
    page = client.get(response["Location"])
    token = re.search(r"(mlm_[A-Za-z0-9_-]+)", page.content.decode()).group(1)
    assert ApiClient.objects.get(name="sira-prod").token_hash == hash_token(token)
    assert "messages" not in page.cookies
    assert not any(token in morsel.value for morsel in client.cookies.values())


@pytest.mark.django_db
def test_a_session_ends_after_thirty_idle_minutes(client, settings):
    client.force_login(UserFactory(username="olivia", is_staff=True, is_superuser=True))
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        assert client.get("/ops/rollout-control").status_code == 200
        # Active: a request every 20 minutes keeps the session for well past 30 minutes.
        for _ in range(3):
            clock.shift(20 * 60)
            assert client.get("/ops/rollout-control").status_code == 200
        clock.shift(31 * 60)
        response = client.get("/ops/rollout-control")
    assert response.status_code == 302 and "/login/" in response["Location"]
