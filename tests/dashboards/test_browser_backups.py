"""``/ops/backups`` in a real Chromium on the live server: filters, and role-aware controls."""

from __future__ import annotations

import re

import pytest

from backups.models import PluginBackup
from molam_upgrades.models import AuditEntry
from tests.browser import expect, person, screenshot, sign_in
from tests.factories import BackupFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _backups():
    woo = BackupFactory(
        plugin_name="woocommerce",
        version="3.9.0",
        backup_status="completed",
        backup_size_bytes=3 * 1024 * 1024,
    )
    presta = BackupFactory(plugin_name="prestashop", version="1.7.9", backup_status="pending")
    return woo, presta


def test_a_viewer_filters_the_backups_and_sees_no_controls(page):  # noqa: F811
    woo, presta = _backups()
    person("vera", "ops_viewer")
    sign_in(page, "vera", "/ops/backups")
    expect(page.get_by_role("heading", name="Backups", exact=True)).to_be_visible()
    expect(page.locator(f'tr[data-backup="{woo.backup_id}"]')).to_contain_text("3.0 MiB")
    expect(page.get_by_role("button", name=re.compile("Mark the"))).to_have_count(0)

    page.get_by_label("Plugin").select_option("prestashop")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"plugin_name=prestashop"))
    expect(page.locator(f'tr[data-backup="{presta.backup_id}"]')).to_be_visible()
    expect(page.locator(f'tr[data-backup="{woo.backup_id}"]')).to_have_count(0)
    screenshot(page, "backups-viewer-filtered")


def test_an_operator_marks_a_backup_failed_from_the_page(page):  # noqa: F811
    woo, _ = _backups()
    person("omar", "ops_plugins")
    sign_in(page, "omar", "/ops/backups")
    page.get_by_label("Status").select_option("completed")
    page.get_by_role("button", name="Apply filters").click()
    row = page.locator(f'tr[data-backup="{woo.backup_id}"]')
    row.get_by_role("button", name="Mark the woocommerce 3.9.0 backup as failed").click()
    expect(page.get_by_role("status")).to_contain_text("marked as failed")
    expect(page).to_have_url(re.compile(r"status=completed"))
    screenshot(page, "backups-operator")
    assert PluginBackup.objects.get(pk=woo.pk).backup_status == "failed"
    assert AuditEntry.objects.filter(action="backup.updated", actor="user:omar").count() == 1
