from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import CommandError, call_command

from molam_upgrades.models import ApiClient, AuditEntry, hash_token
from tests.conftest import Api

pytestmark = pytest.mark.django_db


def _create(*args) -> str:
    out = io.StringIO()
    call_command("create_api_client", *args, stdout=out)
    return out.getvalue()


def test_command_prints_the_token_alone_on_the_last_line_and_stores_only_its_hash():
    merchant = uuid.uuid4()
    output = _create("shop-1", "--role", "plugin", "--merchant-id", str(merchant))
    token = output.rstrip("\n").splitlines()[-1]
    assert token.startswith("mlm_") and " " not in token and len(token) > 40
    client = ApiClient.objects.get(name="shop-1")
    assert client.token_hash == hash_token(token)
    assert token not in str(list(ApiClient.objects.values()))
    assert client.merchant_id == merchant
    assert AuditEntry.objects.filter(action="credential.created", object_id=str(client.pk)).exists()
    # and the token works
    assert Api(token, "shop-1", merchant).get("rollback/pending").status_code == 200


def test_plugin_role_requires_a_merchant():
    with pytest.raises(CommandError, match="merchant"):
        _create("shop-2", "--role", "plugin")
    assert not ApiClient.objects.exists()


def test_unknown_role_is_refused():
    with pytest.raises(CommandError):
        _create("x", "--role", "root")


def test_duplicate_names_are_refused():
    _create("ops", "--role", "ops_plugins")
    with pytest.raises(CommandError, match="already exists"):
        _create("ops", "--role", "ops_viewer")


def test_bad_merchant_id_is_refused():
    with pytest.raises(CommandError, match="UUID"):
        _create("shop-3", "--role", "plugin", "--merchant-id", "42")
