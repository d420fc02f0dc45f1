from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import PluginBackup
from backups.services import expire_backups
from tests.conftest import MERCHANT_A, MERCHANT_B, assert_error
from tests.factories import BackupFactory

pytestmark = pytest.mark.django_db

BACKUP = {
    "merchant_id": str(MERCHANT_A),
    "plugin_name": "woocommerce",
    "version": "3.9.0",
    "backup_path": "/backups/woocommerce-3.9.0-2024-01-15.zip",
    "backup_size_bytes": 5242880,
}


def test_plugin_records_a_backup_pending_for_30_days(cast):
    response = cast.plugin_a.post("backup", BACKUP)
    assert response.status_code == 201
    data = response.json()["backup"]
    backup = PluginBackup.objects.get(pk=data["backup_id"])
    assert data["backup_status"] == backup.backup_status == "pending"
    assert backup.backup_size_bytes == 5242880
    lifetime = backup.expires_at - backup.created_at
    assert timedelta(days=29, hours=23) < lifetime <= timedelta(days=30, seconds=1)
    assert "expires_at" in data


def test_backup_is_completed_with_patch(cast):
    backup_id = cast.plugin_a.post("backup", BACKUP).json()["backup"]["backup_id"]
    sha = "a" * 64
    response = cast.plugin_a.patch(
        f"backup/{backup_id}",
        {"backup_status": "completed", "sha256": sha, "backup_size_bytes": 42},
    )
    assert response.status_code == 200
    backup = PluginBackup.objects.get(pk=backup_id)
    assert (backup.backup_status, backup.sha256, backup.backup_size_bytes) == ("completed", sha, 42)


def test_expired_backups_cannot_be_changed(cast):
    backup = BackupFactory(merchant_id=MERCHANT_A, backup_status="expired")
    assert_error(cast.plugin_a.patch(f"backup/{backup.pk}", {"backup_status": "completed"}), 409)


def test_completed_backup_cannot_go_back_to_pending(cast):
    backup = BackupFactory(merchant_id=MERCHANT_A, backup_status="completed")
    assert_error(cast.plugin_a.patch(f"backup/{backup.pk}", {"backup_status": "pending"}), 409)


def test_patch_needs_a_change(cast):
    backup = BackupFactory(merchant_id=MERCHANT_A)
    assert_error(cast.plugin_a.patch(f"backup/{backup.pk}", {}), 400)
    assert_error(cast.plugin_a.patch(f"backup/{backup.pk}", {"sha256": "xyz"}), 400)


def test_plugin_cannot_touch_another_merchants_backup(cast):
    backup = BackupFactory(merchant_id=MERCHANT_A)
    assert_error(cast.plugin_b.patch(f"backup/{backup.pk}", {"backup_status": "failed"}), 403)
    backup.refresh_from_db()
    assert backup.backup_status == "pending"
    assert_error(cast.plugin_b.post("backup", BACKUP), 403)
    assert PluginBackup.objects.count() == 1


def test_unknown_backup_is_404(cast):
    assert_error(cast.ops.patch(f"backup/{uuid.uuid4()}", {"backup_status": "failed"}), 404)


def test_list_backups_newest_first_with_filters(cast):
    now = timezone.now()
    older = BackupFactory(
        merchant_id=MERCHANT_A,
        version="3.9.0",
        backup_status="completed",
        created_at=now - timedelta(days=1),
    )
    newer = BackupFactory(merchant_id=MERCHANT_A, version="3.9.0", backup_status="completed", created_at=now)
    BackupFactory(merchant_id=MERCHANT_A, version="3.8.0", backup_status="completed")
    BackupFactory(merchant_id=MERCHANT_B, version="3.9.0", backup_status="failed")

    body = cast.viewer.get(
        "backups", {"merchant_id": str(MERCHANT_A), "version": "3.9.0", "status": "completed"}
    ).json()
    assert [b["backup_id"] for b in body["backups"]] == [str(newer.pk), str(older.pk)]
    assert body["total"] == 2


def test_plugin_lists_only_its_own_backups(cast):
    mine = BackupFactory(merchant_id=MERCHANT_A)
    BackupFactory(merchant_id=MERCHANT_B)
    body = cast.plugin_a.get("backups").json()
    assert [b["backup_id"] for b in body["backups"]] == [str(mine.pk)]
    assert_error(cast.plugin_a.get("backups", {"merchant_id": str(MERCHANT_B)}), 403)


def test_expire_backups_marks_only_expired_ones_and_is_idempotent():
    now = timezone.now()
    old = BackupFactory(expires_at=now - timedelta(minutes=1), backup_status="completed")
    fresh = BackupFactory(expires_at=now + timedelta(days=1), backup_status="completed")
    assert expire_backups(now) == 1
    assert expire_backups(now) == 0
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.backup_status, fresh.backup_status) == ("expired", "completed")
