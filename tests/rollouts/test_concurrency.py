"""Races: overlapping Sira runs, and a pause racing a percentage change."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from rollbacks.models import RollbackHistory
from rollouts import services
from rollouts.models import Rollout
from tests.factories import RolloutFactory, UpgradeLogFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("uses_postgres")]


def _in_threads(*targets):
    errors = []
    barrier = threading.Barrier(len(targets))

    def wrap(fn):
        def run():
            try:
                barrier.wait()
                fn()
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
            finally:
                connections.close_all()

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


def test_overlapping_sira_runs_pause_each_rollout_once():
    for name in ("a", "b", "c"):
        RolloutFactory(plugin_name=name, version="1.0.0")
        for i in range(20):
            UpgradeLogFactory(plugin_name=name, to_version="1.0.0", status="failed" if i < 10 else "success")

    def python_run():
        services.auto_pause_failing_rollouts(source="http")

    def sql_run():
        with connection.cursor() as cursor:
            cursor.execute("SELECT auto_pause_failing_rollouts()")

    errors = _in_threads(python_run, python_run, sql_run, python_run)
    assert errors == []
    assert Rollout.objects.filter(status="paused").count() == 3
    assert RollbackHistory.objects.filter(sira_triggered=True).count() == 3


def test_pause_racing_a_percentage_change_loses_neither():
    for attempt in range(5):
        rollout = RolloutFactory(plugin_name=f"race-{attempt}", rollout_percentage=5)
        errors = _in_threads(
            lambda r=rollout: services.change_rollout(r.pk, actor="user:a", percentage=25),
            lambda r=rollout: services.pause_rollout(r.pk, actor="user:b", reason="stop"),
        )
        assert errors == []
        rollout.refresh_from_db()
        assert (rollout.rollout_percentage, rollout.status, rollout.paused_reason) == (25, "paused", "stop")
