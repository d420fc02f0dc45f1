"""Who may open the pages and who may act: login, roles, CSRF."""

from __future__ import annotations

import pytest
from django.urls import reverse

from molam_upgrades.models import AuditEntry
from rollouts.models import Rollout

from .conftest import PASSWORD, make_rollout, post_forms

PAGES = ["/ops/rollout-control", "/ops/rollback-dashboard", "/ops/rollback-dashboard/live"]


def action_urls(rollout_id: int) -> list[str]:
    return [
        reverse("rollout-control"),
        reverse("rollout-percentage", args=[rollout_id]),
        reverse("rollout-pause", args=[rollout_id]),
        reverse("rollout-resume", args=[rollout_id]),
        reverse("rollout-complete", args=[rollout_id]),
    ]


@pytest.mark.parametrize("path", PAGES + ["/"])
def test_anonymous_visitors_are_sent_to_the_login_page(anonymous, path, db):
    response = anonymous.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_a_live_poll_after_the_session_ended_sends_the_tab_to_the_login_page(anonymous, db):
    response = anonymous.get(
        "/ops/rollback-dashboard/live",
        headers={
            "HX-Request": "true",
            "HX-Current-URL": "http://testserver/ops/rollback-dashboard?plugin_name=x",
        },
    )
    assert response.status_code == 401
    assert response["HX-Redirect"] == "/login/?next=/ops/rollback-dashboard%3Fplugin_name%3Dx"


def test_the_login_page_has_the_product_look_and_signs_in(anonymous, ops_user):
    page = anonymous.get("/login/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Sign in" in html and "css/app.css" in html
    assert 'autocomplete="username"' in html  # Django's AuthenticationForm, labelled fields
    response = anonymous.submit("/login/", {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert anonymous.get("/")["Location"] == reverse("rollout-control")


def test_a_wrong_password_is_explained(anonymous, ops_user):
    response = anonymous.submit("/login/", {"username": "olivia", "password": "nope"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()


def test_sign_out_is_a_post(ops):
    assert ops.get("/logout/").status_code == 405
    response = ops.submit("/logout/")
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert ops.get("/ops/rollout-control").status_code == 302


@pytest.mark.parametrize("path", PAGES + ["/"])
def test_a_person_without_an_ops_role_is_refused(outsider, path):
    response = outsider.get(path)
    assert response.status_code == 403
    assert "ops role" in response.content.decode()


def test_a_person_without_an_ops_role_cannot_act(outsider, db):
    rollout = make_rollout()
    for url in action_urls(rollout.pk):
        assert outsider.submit(url, {"percentage": "15"}).status_code == 403, url
    rollout.refresh_from_db()
    assert rollout.rollout_percentage == 5


@pytest.mark.parametrize("path", PAGES)
def test_every_ops_role_can_read_the_pages(viewer, ops, admin, path):
    for client in (viewer, ops, admin):
        assert client.get(path).status_code == 200


def test_a_viewer_sees_the_same_rollouts_without_any_control(viewer, ops, db):
    rollout = make_rollout()
    viewer_html = viewer.get("/ops/rollout-control").content.decode()
    ops_html = ops.get("/ops/rollout-control").content.decode()
    assert f'id="rollout-{rollout.pk}"' in viewer_html
    assert "read-only" in viewer_html
    assert post_forms(viewer_html) == []
    assert "Start a rollout" not in viewer_html and "<button" not in viewer_html.split("</header>", 1)[1]
    assert reverse("rollout-pause", args=[rollout.pk]) in post_forms(ops_html)
    assert reverse("rollout-control") in post_forms(ops_html)


def test_a_viewer_gets_403_on_every_action_and_nothing_changes(viewer, db):
    rollout = make_rollout()
    before = AuditEntry.objects.count()
    for url in action_urls(rollout.pk):
        response = viewer.submit(url, {"percentage": "15", "plugin_name": "wix", "version": "1.0.0"})
        assert response.status_code == 403, url
    rollout.refresh_from_db()
    assert (rollout.rollout_percentage, rollout.status) == (5, "active")
    assert not Rollout.objects.filter(plugin_name="wix").exists()
    assert AuditEntry.objects.count() == before


def test_a_superuser_counts_as_pay_admin_and_gets_the_controls(admin, db):
    rollout = make_rollout()
    html = admin.get("/ops/rollout-control").content.decode()
    assert "Payments admin" in html
    assert reverse("rollout-complete", args=[rollout.pk]) in post_forms(html)


def test_actions_without_a_csrf_token_are_refused(ops, db):
    rollout = make_rollout()
    for url in action_urls(rollout.pk):
        response = ops.post(url, {"percentage": "15", "plugin_name": "wix", "version": "1.0.0"})
        assert response.status_code == 403, url
    rollout.refresh_from_db()
    assert rollout.rollout_percentage == 5
    assert not Rollout.objects.filter(plugin_name="wix").exists()


def test_actions_only_accept_post(ops, db):
    rollout = make_rollout()
    for url in action_urls(rollout.pk)[1:]:
        assert ops.get(url).status_code == 405


def test_an_unknown_rollout_is_a_404(ops, db):
    assert ops.submit(reverse("rollout-pause", args=[999999])).status_code == 404
