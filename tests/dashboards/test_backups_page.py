"""``/ops/backups``: filters, size/checksum/expiry, role-aware controls, audited "Mark failed"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import PluginBackup
from molam_upgrades.models import AuditEntry
from tests.factories import BackupFactory

from .conftest import post_forms

PAGE = "/ops/backups"
pytestmark = pytest.mark.django_db


def _backups():
    now = timezone.now()
    return {
        "woo": BackupFactory(
            plugin_name="woocommerce",
            version="3.9.0",
            backup_status="completed",
            backup_size_bytes=5 * 1024 * 1024,
            sha256="ab" * 32,
        ),
        "presta": BackupFactory(plugin_name="prestashop", version="1.7.9", backup_status="pending"),
        "old": BackupFactory(
            plugin_name="shopify",
            version="2.2.0",
            backup_status="expired",
            created_at=now - timedelta(days=40),
            expires_at=now - timedelta(days=10),
        ),
    }


def test_the_page_lists_backups_with_size_checksum_and_expiry(viewer):
    rows = _backups()
    html = viewer.get(PAGE).content.decode()
    assert "3 backups" in html
    assert "5.0 MiB" in html and "abababababab…" in html and f'title="{"ab" * 32}"' in html
    assert "in 29 days" in html or "in 30 days" in html
    assert "expired" in html and str(rows["old"].backup_id) in html


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ({"plugin_name": "prestashop"}, "presta", "woo"),
        ({"status": "completed"}, "woo", "presta"),
    ],
)
def test_filters_by_plugin_and_status(viewer, query, shown, hidden):
    rows = _backups()
    html = viewer.get(PAGE, query).content.decode()
    assert str(rows[shown].backup_id) in html and str(rows[hidden].backup_id) not in html


def test_filter_by_merchant_and_a_malformed_merchant_is_an_error_not_a_500(viewer):
    rows = _backups()
    html = viewer.get(PAGE, {"merchant_id": str(rows["woo"].merchant_id)}).content.decode()
    assert "1 backup " in html and str(rows["woo"].backup_id) in html
    response = viewer.get(PAGE, {"merchant_id": "not-a-uuid"})
    assert response.status_code == 200 and "Enter a valid UUID" in response.content.decode()


def test_a_viewer_gets_no_controls_and_cannot_post(viewer):
    rows = _backups()
    assert post_forms(viewer.get(PAGE).content.decode()) == []
    response = viewer.submit(f"{PAGE}/{rows['woo'].backup_id}/fail")
    assert response.status_code == 403
    rows["woo"].refresh_from_db()
    assert rows["woo"].backup_status == "completed"


def test_an_operator_marks_a_backup_failed_through_the_audited_service(ops):
    rows = _backups()
    html = ops.get(PAGE).content.decode()
    forms = post_forms(html)
    assert f"{PAGE}/{rows['woo'].backup_id}/fail" in forms
    assert f"{PAGE}/{rows['old'].backup_id}/fail" not in forms  # final states have no button
    response = ops.submit(f"{PAGE}/{rows['woo'].backup_id}/fail", {"next": f"{PAGE}?plugin_name=woocommerce"})
    assert response.status_code == 302 and response["Location"] == f"{PAGE}?plugin_name=woocommerce"
    rows["woo"].refresh_from_db()
    assert rows["woo"].backup_status == "failed"
    entry = AuditEntry.objects.get(action="backup.updated")
    assert entry.actor == "user:olivia" and entry.after == {"backup_status": "failed"}
    # A second attempt is a message (a failed backup is final), never a 500.
    again = ops.submit(f"{PAGE}/{rows['woo'].backup_id}/fail", follow=True)
    assert again.status_code == 200 and "cannot be changed" in again.content.decode()


def test_anonymous_visitors_are_sent_to_log_in(anonymous):
    response = anonymous.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_page_costs_a_bounded_number_of_queries(viewer, django_assert_max_num_queries):
    BackupFactory.create_batch(60)
    viewer.get(PAGE)  # warm the session and the role lookups
    with django_assert_max_num_queries(8):
        response = viewer.get(PAGE)
    assert response.status_code == 200 and PluginBackup.objects.count() == 60
