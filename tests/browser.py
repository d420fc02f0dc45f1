"""Real Chromium for the page tests: Debian's package, driven by Playwright, on the live server.

The browser tests import their fixtures and helpers from here (one launch recipe, one sign-in).
A missing browser is a failure that says what to install, never a skip.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from playwright import sync_api

from tests.chromium import CHROMIUM, CHROMIUM_ARGS

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
PASSWORD = "browser-pass-123"

expect = sync_api.expect


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM} (Debian package: chromium; make test installs it)"
        )
    # Playwright's sync API keeps an event loop running in this thread; Django refuses ORM
    # calls from such a thread unless told it is safe (it is: the loop is idle meanwhile).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server):
    """A fresh context per test (Dakar time); ``page.console_errors`` collects console errors."""
    context = browser.new_context(viewport={"width": 1366, "height": 900}, timezone_id="Africa/Dakar")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.base = live_server.url
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.console_errors = errors
    yield page
    context.close()


def person(username: str, role: str) -> User:
    # Transactional tests empty the tables between tests, role groups included.
    user = User.objects.create_user(username=username, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def sign_in(page, username: str, path: str = "/ops/rollout-control") -> None:
    page.goto(f"{page.base}{path}")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
