"""Notices are delivered by Celery tasks; in the merchants and payments tests they run inline,
through ``Task.apply``.

``delay()`` acquires a broker producer even for an eager task, and the broker-outage tests
close the publisher's pool for the rest of the session; ``apply`` runs the same task (retries
included) without a producer, so these tests do not depend on which tests ran before.

Each of ``tests/merchants/conftest.py`` and ``tests/payments/conftest.py`` imports the fixture
below, which makes it autouse in that folder only.
"""

from __future__ import annotations

import pytest

from merchants import services, tasks


@pytest.fixture(autouse=True)
def _deliver_inline(monkeypatch):
    def enqueue(notice_id, deliver_after):
        tasks.deliver_notice.apply(args=[str(notice_id)])

    monkeypatch.setattr(services, "_enqueue", enqueue)
    monkeypatch.setattr(
        tasks.deliver_notice, "delay", lambda notice_id: tasks.deliver_notice.apply(args=[notice_id])
    )
