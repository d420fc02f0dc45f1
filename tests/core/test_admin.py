"""Django admin: every model registered, tokens shown once, audit trail read-only."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages

from molam_upgrades.models import ApiClient, AuditEntry, hash_token
from tests.factories import PendingRollbackFactory, RollbackFactory, RolloutFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    user = UserFactory(is_staff=True, is_superuser=True, username="root")
    client.force_login(user)
    return client


def test_every_model_is_registered():
    from django.apps import apps

    for app in ("molam_upgrades", "backups", "rollbacks", "rollouts"):
        for model in apps.get_app_config(app).get_models():
            assert admin.site.is_registered(model), model


@pytest.mark.parametrize(
    "url",
    [
        "/admin/molam_upgrades/apiclient/",
        "/admin/molam_upgrades/auditentry/",
        "/admin/molam_upgrades/alert/",
        "/admin/backups/pluginbackup/",
        "/admin/rollbacks/rollbackhistory/",
        "/admin/rollbacks/upgradelog/",
        "/admin/rollouts/rollout/",
        "/admin/rollouts/release/",
        "/admin/rollouts/autocheckrun/",
    ],
)
def test_changelists_render_with_filters(superuser_client, url):
    RollbackFactory()
    RolloutFactory()
    response = superuser_client.get(url)
    assert response.status_code == 200


def test_credential_created_in_admin_shows_its_token_once(superuser_client):
    response = superuser_client.post(
        "/admin/molam_upgrades/apiclient/add/",
        {"name": "sira-prod", "role": "sira", "is_active": "on"},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    token = next(re.search(r"(mlm_\S+)", m).group(1) for m in messages if "mlm_" in m)
    client = ApiClient.objects.get(name="sira-prod")
    assert client.token_hash == hash_token(token)
    assert AuditEntry.objects.filter(action="credential.created", actor="user:root").exists()
    page = superuser_client.get(f"/admin/molam_upgrades/apiclient/{client.pk}/change/").content.decode()
    assert token not in page


def test_plugin_credential_without_merchant_is_refused_in_admin(superuser_client):
    response = superuser_client.post(
        "/admin/molam_upgrades/apiclient/add/", {"name": "shop", "role": "plugin", "is_active": "on"}
    )
    assert response.status_code == 200  # form redisplayed with an error
    assert not ApiClient.objects.exists()


def test_rollback_history_is_read_only_in_admin(superuser_client):
    done = RollbackFactory()
    pending = PendingRollbackFactory()
    page = superuser_client.get(f"/admin/rollbacks/rollbackhistory/{done.pk}/change/").content.decode()
    assert 'name="success"' not in page
    # An in-progress rollback changes only through the "close as failed" action (audited).
    page = superuser_client.get(f"/admin/rollbacks/rollbackhistory/{pending.pk}/change/").content.decode()
    assert 'name="rollback_reason"' not in page


def test_audit_log_cannot_be_edited_in_admin(superuser_client):
    entry = AuditEntry.record(actor="user:x", action="rollout.created", object_type="rollout", object_id="1")
    page = superuser_client.get(f"/admin/molam_upgrades/auditentry/{entry.pk}/change/").content.decode()
    assert 'name="actor"' not in page
    assert (
        superuser_client.post(
            f"/admin/molam_upgrades/auditentry/{entry.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )


def test_rollout_admin_actions_use_the_audited_services(superuser_client, django_capture_on_commit_callbacks):
    rollout = RolloutFactory()
    superuser_client.post("/admin/rollouts/rollout/", {"action": "pause", "_selected_action": [rollout.pk]})
    rollout.refresh_from_db()
    assert rollout.status == "paused" and rollout.paused_by == "user:root"
    superuser_client.post("/admin/rollouts/rollout/", {"action": "resume", "_selected_action": [rollout.pk]})
    superuser_client.post(
        "/admin/rollouts/rollout/", {"action": "complete", "_selected_action": [rollout.pk]}
    )
    rollout.refresh_from_db()
    assert rollout.status == "completed"
    assert list(
        AuditEntry.objects.filter(object_id=str(rollout.pk)).order_by("id").values_list("action", "actor")
    ) == [
        ("rollout.paused", "user:root"),
        ("rollout.resumed", "user:root"),
        ("rollout.completed", "user:root"),
    ]


def test_viewer_cannot_run_rollout_actions(client):
    viewer = UserFactory(is_staff=True, roles=["ops_viewer"])
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_rollout", "change_rollout"]))
    client.force_login(viewer)
    rollout = RolloutFactory()
    client.post("/admin/rollouts/rollout/", {"action": "pause", "_selected_action": [rollout.pk]})
    rollout.refresh_from_db()
    assert rollout.status == "active"
