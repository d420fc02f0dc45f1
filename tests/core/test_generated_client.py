"""A client generated from ``/api/schema/`` (openapi-python-client) runs the seed's flows against
the live server: the schema is typed enough for a generated client to be useful, and true."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from molam_upgrades.credentials import create_api_client

pytestmark = pytest.mark.django_db(transaction=True)

MERCHANT_A = uuid.UUID("123e4567-e89b-12d3-a456-426614174000")
MERCHANT_B = uuid.UUID("9b2f7a1e-3c4d-4e5f-8a6b-7c8d9e0f1a2b")


@pytest.fixture
def generated(live_server, tmp_path):
    """Generate the client package ``molam_client`` into a temporary folder and import it."""
    generator = shutil.which(
        "openapi-python-client",
        path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    if generator is None:
        pytest.fail("openapi-python-client is not installed (pip install -e '.[dev]')")
    _, token = create_api_client(name="schema-reader", role="ops_viewer", merchant_id=None, actor="test")
    request = urllib.request.Request(
        f"{live_server.url}/api/schema/", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        schema = yaml.safe_load(response.read())  # /api/schema/ answers YAML
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    result = subprocess.run(
        [generator, "generate", "--path", "schema.json", "--output-path", "molam_client", "--meta", "none"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("molam_client")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "molam_client" or m.startswith("molam_client.")]:
            del sys.modules[name]


def _client(package, live_server, name: str, role: str, merchant_id=None):
    _, token = create_api_client(name=name, role=role, merchant_id=merchant_id, actor="test")
    return package.AuthenticatedClient(base_url=live_server.url, token=token, raise_on_unexpected_status=True)


def test_the_seed_flows_through_a_generated_client(generated, live_server):
    from importlib import import_module

    api = lambda name: import_module(f"molam_client.api.plugins.{name}")  # noqa: E731
    models = import_module("molam_client.models")
    ops = _client(generated, live_server, "ops", "ops_plugins")
    sira = _client(generated, live_server, "sira", "sira")
    shop_a = _client(generated, live_server, "shop-a", "plugin", MERCHANT_A)
    shop_b = _client(generated, live_server, "shop-b", "plugin", MERCHANT_B)

    # 115ter: register a release, start a rollout at 100 %, ask whether to upgrade.
    release = api("plugins_releases_create").sync(
        client=ops,
        body=models.ReleaseCreate(
            plugin_name="woocommerce",
            version="4.0.0",
            download_url="https://releases.molam.example/woocommerce-4.0.0.zip",
            sha256="a" * 64,
        ),
    )
    assert isinstance(release, models.ReleaseResponse) and release.release.version == "4.0.0"
    created = api("plugins_rollouts_create").sync(
        client=ops, body=models.RolloutCreate(plugin_name="woocommerce", version="4.0.0", percentage=100.0)
    )
    assert created.rollout.status == models.RolloutStatusEnum.ACTIVE
    decision = api("plugins_rollouts_should_upgrade_retrieve").sync(
        "woocommerce", client=shop_a, merchant_id=MERCHANT_A, current_version="3.9.0"
    )
    assert decision.should_upgrade is True and decision.release.download_url.startswith("https://")

    # 115bis: the agent backs up, upgrades, fails, rolls back and reports each step.
    backup = api("plugins_backup_create").sync(
        client=shop_a,
        body=models.BackupCreate(
            merchant_id=MERCHANT_A, plugin_name="woocommerce", version="3.9.0", backup_path="/backups/woo.tar"
        ),
    )
    assert backup.backup.backup_status == models.BackupStatusEnum.PENDING
    api("plugins_backup_partial_update").sync(
        str(backup.backup.backup_id),
        client=shop_a,
        body=models.PatchedBackupUpdate(
            backup_status=models.ReportedBackupStatusEnum.COMPLETED, backup_size_bytes=2048
        ),
    )
    report = api("plugins_upgrades_create").sync(
        client=shop_a,
        body=models.UpgradeReport(
            merchant_id=MERCHANT_A,
            plugin_name="woocommerce",
            from_version="3.9.0",
            to_version="4.0.0",
            status=models.UpgradeStatusEnum.FAILED,
            error="Smoke test returned HTTP 500",
        ),
    )
    assert report.upgrade_log.status == models.UpgradeStatusEnum.FAILED
    initiated = api("plugins_rollback_initiate_create").sync(
        client=shop_a,
        body=models.RollbackInitiate(
            merchant_id=MERCHANT_A,
            plugin_name="woocommerce",
            from_version="4.0.0",
            to_version="3.9.0",
            trigger=models.RollbackTriggerEnum.AUTOMATIC,
            reason="Upgrade verification failed",
        ),
    )
    assert initiated.rollback.status == models.RollbackProgressEnum.IN_PROGRESS
    completed = api("plugins_rollback_complete_create").sync(
        str(initiated.rollback_id),
        client=shop_a,
        body=models.RollbackComplete(success=True, duration_ms=1800, files_restored=120, db_restored=True),
    )
    assert (
        completed.rollback.success is True
        and completed.rollback.status == models.RollbackProgressEnum.COMPLETED
    )

    # Another merchant's credential gets the typed error envelope.
    refused = api("plugins_backup_detail").sync_detailed(str(backup.backup.backup_id), client=shop_b)
    assert (
        refused.status_code == 403 and isinstance(refused.parsed, models.Error) and refused.parsed.ok is False
    )

    # Operator-forced rollback waits for the merchant's agent.
    api("plugins_rollback_initiate_create").sync(
        client=ops,
        body=models.RollbackInitiate(
            merchant_id=MERCHANT_A,
            plugin_name="woocommerce",
            from_version="4.0.0",
            to_version="3.9.0",
            trigger=models.RollbackTriggerEnum.OPERATOR_FORCED,
            reason="Performance degradation reported",
        ),
    )
    pending = api("plugins_rollback_pending_retrieve").sync(client=shop_a)
    assert len(pending.rollbacks) == 1
    assert pending.rollbacks[0].rollback_trigger == models.RollbackTriggerEnum.OPERATOR_FORCED

    # Ops reads: history (seed list shape), stats with KPIs, backups; Sira's auto-check; pause/resume.
    history = api("plugins_rollback_history_list").sync(client=ops, plugin_name="woocommerce")
    assert history.total == 2 and len(history.rollbacks) == 2
    stats = api("plugins_rollback_stats_retrieve").sync(client=ops)
    assert stats.total_rollbacks == 1 and stats.kpis.rollback_success_rate_pct.value == 100
    backups = api("plugins_backups_list").sync(client=shop_a)
    assert backups.total == 1 and backups.backups[0].backup_size_bytes == 2048
    check = api("plugins_rollouts_auto_check_create").sync(client=sira)
    assert check.ok is True and check.paused_count == 0
    rollout_id = str(created.rollout.id)
    paused = api("plugins_rollouts_pause_create").sync(
        rollout_id, client=ops, body=models.Pause(reason="Checking")
    )
    assert paused.rollout.status == models.RolloutStatusEnum.PAUSED
    resumed = api("plugins_rollouts_resume_create").sync(rollout_id, client=ops)
    assert resumed.rollout.status == models.RolloutStatusEnum.ACTIVE
    listing = api("plugins_rollouts_list").sync(
        client=ops, include_metrics=models.PluginsRolloutsListIncludeMetrics.TRUE
    )
    assert listing.total == 1 and listing.rollouts[0].upgrades_failed == 1
