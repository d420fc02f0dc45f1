"""Revoking and rotating credentials: audited, and refused by every process at once."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.db import connection

from molam_upgrades.credentials import create_api_client
from molam_upgrades.models import ApiClient, AuditEntry
from tests.conftest import make_api
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]


def _command(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _in_another_process(*args: str) -> subprocess.CompletedProcess:
    """Run a management command in a separate process, on this test database and this Redis."""
    if not settings.REDIS_URL:
        pytest.fail("needs REDIS_URL: revocation across processes goes through the shared cache")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.django_db(transaction=True)
def test_a_revocation_in_another_process_is_refused_here_at_once():
    if connection.vendor != "postgresql":
        pytest.fail("needs PostgreSQL (set DATABASE_URL): the other process must share the database")
    plugin = make_api("shop-9", "plugin", uuid.uuid4())
    assert plugin.get("rollback/pending").status_code == 200  # the token is now cached in this process

    result = _in_another_process("revoke_api_client", "shop-9", "--reason", "laptop stolen")
    assert result.returncode == 0, result.stderr

    response = plugin.get("rollback/pending")
    assert response.status_code == 401 and response.json()["ok"] is False
    entry = AuditEntry.objects.get(action="credential.revoked")
    assert entry.actor == "cli" and entry.after == {"is_active": False, "reason": "laptop stolen"}


@pytest.mark.django_db
def test_rotation_replaces_the_token_and_the_old_one_stops_working(django_capture_on_commit_callbacks):
    viewer = make_api("viewer-1", "ops_viewer")
    assert viewer.get("rollback/stats").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        output = _command("rotate_api_client", "viewer-1")
    new_token = output.rstrip("\n").splitlines()[-1]
    assert new_token.startswith("mlm_")

    assert viewer.get("rollback/stats").status_code == 401
    viewer.client.credentials(HTTP_AUTHORIZATION=f"Bearer {new_token}")
    assert viewer.get("rollback/stats").status_code == 200
    assert AuditEntry.objects.filter(action="credential.rotated", actor="cli").count() == 1
    assert new_token not in str(list(ApiClient.objects.values()))


@pytest.mark.django_db
def test_revoking_twice_or_an_unknown_name_is_a_clear_error():
    make_api("sira-1", "sira")
    _command("revoke_api_client", "sira-1")
    with pytest.raises(CommandError, match="already revoked"):
        _command("revoke_api_client", "sira-1")
    with pytest.raises(CommandError, match="No API client named"):
        _command("revoke_api_client", "nobody")
    with pytest.raises(CommandError, match="revoked"):
        _command("rotate_api_client", "sira-1")


@pytest.mark.django_db
def test_list_shows_every_credential_and_its_state_but_no_token():
    _, token = create_api_client(name="ops-1", role="ops_plugins", merchant_id=None, actor="test")
    create_api_client(name="gone-1", role="ops_viewer", merchant_id=None, actor="test")
    _command("revoke_api_client", "gone-1")
    output = _command("list_api_clients")
    lines = {line.split()[0]: line for line in output.splitlines()[1:]}
    assert "active" in lines["ops-1"] and "revoked" in lines["gone-1"]
    assert token not in output and token[:10] in lines["ops-1"]  # the hint only
    assert list(_command("list_api_clients", "--revoked").splitlines()[1:])[0].startswith("gone-1")


@pytest.mark.django_db
def test_admin_revoke_and_rotate_actions_are_audited(client, django_capture_on_commit_callbacks):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, username="root"))
    revoked = make_api("shop-a", "plugin", uuid.uuid4())
    rotated = make_api("shop-b", "plugin", uuid.uuid4())
    ids = {c.name: c.pk for c in ApiClient.objects.all()}
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/molam_upgrades/apiclient/", {"action": "revoke", "_selected_action": [ids["shop-a"]]}
        )
        response = client.post(
            "/admin/molam_upgrades/apiclient/",
            {"action": "rotate", "_selected_action": [ids["shop-b"]]},
            follow=True,
        )
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    token = next(re.search(r"(mlm_\S+)", m).group(1) for m in messages if "mlm_" in m)

    assert revoked.get("rollback/pending").status_code == 401
    assert rotated.get("rollback/pending").status_code == 401
    rotated.client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert rotated.get("rollback/pending").status_code == 200
    assert set(AuditEntry.objects.filter(actor="user:root").values_list("action", flat=True)) == {
        "credential.revoked",
        "credential.rotated",
    }
    # The change form cannot flip is_active behind the audit log's back.
    page = client.get(f"/admin/molam_upgrades/apiclient/{ids['shop-b']}/change/").content.decode()
    assert 'name="is_active"' not in page


@pytest.mark.django_db
def test_a_revocation_check_window_trades_immediacy_for_throughput(settings, monkeypatch):
    from django.core.cache import cache

    from molam_upgrades import credentials

    settings.API_REVOCATION_CHECK_SECONDS = 0.3
    monkeypatch.setattr(credentials, "_seen", (0.0, None))
    viewer = make_api("viewer-w", "ops_viewer")
    assert viewer.get("rollback/stats").status_code == 200
    # What another process's revocation does: the row, then the shared generation.
    ApiClient.objects.filter(name="viewer-w").update(is_active=False)
    cache.incr(credentials.GENERATION_KEY)
    assert viewer.get("rollback/stats").status_code == 200  # inside the window: not yet seen here
    time.sleep(0.35)
    assert viewer.get("rollback/stats").status_code == 401
