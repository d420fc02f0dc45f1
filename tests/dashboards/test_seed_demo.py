"""``seed_demo``: demo data in every state, three demo users, and a second run changes nothing."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.core.management import call_command

from molam_upgrades.auth import user_roles
from molam_upgrades.management.commands.seed_demo import DEMO_PASSWORD
from molam_upgrades.models import Alert, AuditEntry
from rollbacks.models import RollbackHistory, UpgradeLog
from rollouts.models import AutoCheckRun, Release, Rollout

from .conftest import Browserish


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Rollout, Release, RollbackHistory, UpgradeLog, Alert, AuditEntry, AutoCheckRun)
    }


def test_seed_demo_loads_every_state_and_is_idempotent(db, capsys):
    call_command("seed_demo")
    first = counts()
    statuses = set(Rollout.objects.values_list("status", flat=True))
    assert statuses == {"active", "paused", "completed", "rolled_back"}
    sira_paused = Rollout.objects.get(auto_paused=True)
    assert sira_paused.paused_by == "sira" and sira_paused.paused_reason.startswith("Sira auto-pause")
    assert Rollout.objects.filter(status="paused", auto_paused=False).exists()
    assert RollbackHistory.objects.filter(sira_triggered=True).count() == 1
    assert RollbackHistory.objects.filter(success=False).exists()
    assert RollbackHistory.objects.filter(completed_at__isnull=True).count() == 1  # one awaiting its agent
    oldest = RollbackHistory.objects.order_by("created_at").first().created_at
    newest = RollbackHistory.objects.order_by("-created_at").first().created_at
    assert (newest - oldest).days >= 20
    assert first["Alert"] >= 2 and first["Release"] >= 5 and first["AutoCheckRun"] == 1
    assert "molam-demo" in capsys.readouterr().out

    call_command("seed_demo")
    assert counts() == first


def test_demo_users_sign_in_with_their_roles(db):
    call_command("seed_demo")
    roles = {
        name: user_roles(authenticate(username=name, password=DEMO_PASSWORD))
        for name in ("admin", "ops", "viewer")
    }
    assert "pay_admin" in roles["admin"]
    assert roles["ops"] == {"ops_plugins"}
    assert roles["viewer"] == {"ops_viewer"}


def test_the_demo_renders_on_both_pages(db):
    call_command("seed_demo")
    client = Browserish()
    assert client.submit("/login/", {"username": "viewer", "password": DEMO_PASSWORD}).status_code == 302
    control = client.get("/ops/rollout-control").content.decode()
    assert "Auto-paused by Sira" in control and "prestashop" in control and "Finished rollouts" in control
    dashboard = client.get("/ops/rollback-dashboard").content.decode()
    assert "row--sira" in dashboard and 'rel="next"' in dashboard  # more history than one page
