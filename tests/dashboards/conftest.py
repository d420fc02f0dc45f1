"""People and data for the dashboard tests: an operator, an admin, a viewer, an outsider."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from rollbacks.choices import UpgradeStatus
from rollouts import services as rollout_services
from tests.factories import UpgradeLogFactory, UserFactory

# The browser tests drive the live server from pytest's (synchronous) thread while Playwright
# runs an event loop; Django's async-safety guard would otherwise refuse the ORM calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's password


class Browserish(Client):
    """A test client that enforces CSRF like a browser and posts forms with the token."""

    def __init__(self, **kwargs):
        super().__init__(enforce_csrf_checks=True, **kwargs)

    def csrf_token(self) -> str:
        # A page that renders {% csrf_token %} sets the cookie: the login form when signed out,
        # the dashboard (or its 403 page, which has the sign-out form) when signed in.
        for page in ("/login/", "/ops/rollout-control"):
            if "csrftoken" in self.cookies:
                break
            self.get(page)
        return self.cookies["csrftoken"].value

    def submit(self, path: str, data: dict | None = None, **kwargs):
        """POST a form as the page would, with the CSRF token."""
        return self.post(path, {**(data or {}), "csrfmiddlewaretoken": self.csrf_token()}, **kwargs)


def login(user) -> Browserish:
    client = Browserish()
    client.force_login(user)
    return client


@pytest.fixture
def ops_user(db):
    return UserFactory(username="olivia", roles=["ops_plugins"])


@pytest.fixture
def admin_user(db):
    return UserFactory(username="root", is_superuser=True, is_staff=True)


@pytest.fixture
def viewer_user(db):
    return UserFactory(username="victor", roles=["ops_viewer"])


@pytest.fixture
def outsider_user(db):
    return UserFactory(username="otto")


@pytest.fixture
def ops(ops_user) -> Browserish:
    return login(ops_user)


@pytest.fixture
def admin(admin_user) -> Browserish:
    return login(admin_user)


@pytest.fixture
def viewer(viewer_user) -> Browserish:
    return login(viewer_user)


@pytest.fixture
def outsider(outsider_user) -> Browserish:
    return login(outsider_user)


@pytest.fixture
def anonymous() -> Browserish:
    return Browserish()


def make_rollout(plugin_name: str = "woocommerce", version: str = "4.0.0", percentage: int = 5, **fields):
    """A rollout started the way the API starts one."""
    return rollout_services.create_rollout(
        actor="user:setup",
        plugin_name=plugin_name,
        version=version,
        rollout_percentage=Decimal(percentage),
        **fields,
    )


def report_upgrades(rollout, ok: int, failed: int) -> None:
    """Upgrade reports from merchants for a rollout's version, after it started."""
    when = timezone.now() + timedelta(seconds=1)
    for status, n in ((UpgradeStatus.SUCCESS, ok), (UpgradeStatus.FAILED, failed)):
        UpgradeLogFactory.create_batch(
            n, plugin_name=rollout.plugin_name, to_version=rollout.version, status=status, created_at=when
        )


def make_auto_paused_rollout(plugin_name: str = "prestashop", version: str = "1.8.0"):
    """A rollout the real Sira rule paused: 4 failures out of 12 reports, threshold 3 %."""
    rollout = make_rollout(plugin_name, version, 50)
    report_upgrades(rollout, ok=8, failed=4)
    paused = rollout_services.auto_pause_failing_rollouts(source="command")
    assert [p.rollout_id for p in paused] == [rollout.pk]
    rollout.refresh_from_db()
    return rollout


def post_forms(html: str) -> list[str]:
    """The action of every POST form on a page, except the sign-out form."""
    actions = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html)
    return [a for a in actions if a != "/logout/"]
