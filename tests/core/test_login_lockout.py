"""Brute-force protection (django-axes) on both sign-in pages: after LOGIN_FAILURE_LIMIT wrong
passwords the right one is refused too, until the cool-down has passed."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "right-password-123"
LOGINS = ["/login/", "/admin/login/"]


@pytest.fixture
def olivia():
    user = UserFactory(username="olivia", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(client, url: str, password: str, username: str = "olivia"):
    return client.post(url, {"username": username, "password": password})


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("url", LOGINS)
def test_after_the_failure_limit_the_right_password_is_refused_until_the_cool_down(client, olivia, url):
    limit = settings.AXES_FAILURE_LIMIT
    assert limit == 5 and settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(limit - 1):
            response = sign_in(client, url, "wrong")
            assert response.status_code == 200 and not signed_in(client)  # the form again
        locked = sign_in(client, url, "wrong")
        assert locked.status_code == 429
        assert "Sign-in locked" in locked.content.decode()

        right = sign_in(client, url, PASSWORD)
        assert right.status_code == 429 and not signed_in(client)

        # Every attempt while locked starts the cool-down again.
        clock.shift(14 * 60)
        assert sign_in(client, url, PASSWORD).status_code == 429 and not signed_in(client)
        clock.shift(14 * 60)
        assert sign_in(client, url, PASSWORD).status_code == 429 and not signed_in(client)

        clock.shift(16 * 60)  # a quiet cool-down after the last attempt
        response = sign_in(client, url, PASSWORD)
        assert response.status_code == 302 and signed_in(client)


def test_failures_on_one_sign_in_page_count_on_the_other(client, olivia):
    for _ in range(3):
        sign_in(client, "/login/", "wrong")
    for _ in range(2):
        sign_in(client, "/admin/login/", "wrong")
    assert sign_in(client, "/admin/login/", PASSWORD).status_code == 429
    assert sign_in(client, "/login/", PASSWORD).status_code == 429


def test_a_success_before_the_limit_starts_the_count_again(client, olivia):
    for _ in range(4):
        sign_in(client, "/login/", "wrong")
    assert sign_in(client, "/login/", PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        sign_in(client, "/login/", "wrong")
    assert sign_in(client, "/login/", PASSWORD).status_code == 302


def test_a_locked_username_does_not_lock_out_anyone_else(client, olivia):
    other = UserFactory(username="oscar")
    other.set_password(PASSWORD)
    other.save()
    for _ in range(5):
        sign_in(client, "/login/", "wrong")
    assert sign_in(client, "/login/", PASSWORD).status_code == 429
    assert sign_in(client, "/login/", PASSWORD, username="oscar").status_code == 302


def test_logins_without_a_request_are_not_guarded(olivia):
    # Management commands and shells authenticate without a request: no lockout, no error.
    from django.contrib.auth import authenticate

    assert authenticate(username="olivia", password=PASSWORD) == olivia
