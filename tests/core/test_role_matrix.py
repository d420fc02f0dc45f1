"""The role × endpoint matrix of SPEC.md, request by request."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import MERCHANT_A
from tests.factories import BackupFactory, PendingRollbackFactory

pytestmark = pytest.mark.django_db

ALL = {"pay_admin", "ops_plugins", "ops_viewer", "sira", "plugin_a", "plugin_b", "anonymous"}


def _upgrade():
    return {
        "merchant_id": str(MERCHANT_A),
        "plugin_name": "woocommerce",
        "from_version": "3.9.0",
        "to_version": "4.0.0",
        "status": "success",
    }


def _initiate(trigger="automatic"):
    return {
        "merchant_id": str(MERCHANT_A),
        "plugin_name": "woocommerce",
        "from_version": "4.0.0",
        "to_version": "3.9.0",
        "trigger": trigger,
        "reason": "r",
    }


# (name, method, path factory, body factory, roles allowed). plugin_a is merchant A's plugin;
# plugin_b belongs to another merchant and must always be refused for merchant A's data.
CASES = [
    (
        "report upgrade",
        "post",
        lambda: "upgrades",
        _upgrade,
        {"pay_admin", "ops_plugins", "plugin_a"},
    ),
    (
        "log rollback",
        "post",
        lambda: "rollback",
        lambda: {
            "merchant_id": str(MERCHANT_A),
            "plugin_name": "woocommerce",
            "rollback_version": "3.9.0",
            "status": "success",
            "reason": "r",
        },
        {"pay_admin", "ops_plugins", "plugin_a"},
    ),
    (
        "initiate automatic",
        "post",
        lambda: "rollback/initiate",
        _initiate,
        {"pay_admin", "ops_plugins", "plugin_a"},
    ),
    (
        "initiate manual",
        "post",
        lambda: "rollback/initiate",
        lambda: _initiate("manual"),
        {"pay_admin", "ops_plugins", "plugin_a"},
    ),
    (
        "initiate operator_forced",
        "post",
        lambda: "rollback/initiate",
        lambda: _initiate("operator_forced"),
        {"pay_admin", "ops_plugins"},
    ),
    (
        "complete",
        "post",
        lambda: f"rollback/{PendingRollbackFactory(merchant_id=MERCHANT_A).pk}/complete",
        lambda: {"success": True, "duration_ms": 1, "files_restored": 1, "db_restored": True},
        {"pay_admin", "ops_plugins", "plugin_a"},
    ),
    (
        "pending",
        "get",
        lambda: f"rollback/pending?merchant_id={MERCHANT_A}",
        None,
        {"pay_admin", "ops_plugins", "plugin_a"},
    ),
    (
        "history",
        "get",
        lambda: "rollback/history",
        None,
        {"pay_admin", "ops_plugins", "ops_viewer"},
    ),
    ("stats", "get", lambda: "rollback/stats", None, {"pay_admin", "ops_plugins", "ops_viewer"}),
    (
        "create backup",
        "post",
        lambda: "backup",
        lambda: {
            "merchant_id": str(MERCHANT_A),
            "plugin_name": "woocommerce",
            "version": "3.9.0",
            "backup_path": "/b",
        },
        {"pay_admin", "ops_plugins", "plugin_a"},
    ),
    (
        "patch backup",
        "patch",
        lambda: f"backup/{BackupFactory(merchant_id=MERCHANT_A).pk}",
        lambda: {"backup_status": "completed"},
        {"pay_admin", "ops_plugins", "plugin_a"},
    ),
    (
        "list backups",
        "get",
        lambda: f"backups?merchant_id={MERCHANT_A}",
        None,
        {"pay_admin", "ops_plugins", "ops_viewer", "plugin_a"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("actor", sorted(ALL))
def test_role_matrix(cast, case, actor):
    _, method, path, body, allowed = case
    api = cast.all()[actor]
    url = path()
    response = getattr(api, method)(url, body()) if body else getattr(api, method)(url)
    if actor in allowed:
        assert response.status_code in (200, 201), (
            actor,
            response.status_code,
            response.content[:300],
        )
    elif actor == "anonymous":
        assert response.status_code == 401, response.content
        assert response["WWW-Authenticate"].startswith("Bearer")
    else:
        assert response.status_code == 403, (actor, response.status_code, response.content[:300])
        assert response.json()["ok"] is False


def test_a_bad_token_is_401(cast):
    from tests.conftest import Api

    response = Api("mlm_not-a-real-token", "bad").get("rollback/stats")
    assert response.status_code == 401 and response.json()["ok"] is False


def test_a_deactivated_credential_is_401(cast):
    from molam_upgrades.auth import clear_token_cache
    from molam_upgrades.models import ApiClient

    ApiClient.objects.filter(name="viewer").update(is_active=False)
    clear_token_cache()
    assert cast.viewer.get("rollback/stats").status_code == 401


def test_session_users_get_their_group_roles(client, db):
    from tests.factories import UserFactory

    viewer = UserFactory(roles=["ops_viewer"])
    nobody = UserFactory()
    client.force_login(viewer)
    assert client.get("/api/plugins/rollback/stats").status_code == 200
    assert (
        client.post("/api/plugins/upgrades", _upgrade(), content_type="application/json").status_code == 403
    )
    client.force_login(nobody)
    assert client.get("/api/plugins/rollback/stats").status_code == 403


def test_unknown_id_in_the_matrix_is_404_not_500(cast):
    assert cast.ops.post(f"rollback/{uuid.uuid4()}/complete", {}).status_code == 404
