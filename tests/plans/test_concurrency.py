"""Two beat runs at the same moment advance a stage once (real PostgreSQL, real threads)."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from molam_upgrades.models import AuditEntry
from plans import services
from plans.models import RolloutPlan

from .conftest import percentage_of, report, start_rollout

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("uses_postgres")]


def run_together(*targets, timeout: float = 30):
    errors, results = [], []
    barrier = threading.Barrier(len(targets))

    def wrap(fn):
        def run():
            try:
                barrier.wait()
                results.append(fn())
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
            finally:
                connections.close_all()

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a beat run did not finish"
    return errors, results


def test_two_concurrent_beat_runs_advance_a_stage_once():
    rollouts = []
    for i in range(8):
        rollout = start_rollout(plugin_name=f"shop-{i}", percentage="5")
        services.attach_plan(
            rollout.pk,
            actor="user:olivia",
            stages=[{"percentage": 5}, {"percentage": 25}, {"percentage": 50}],
        )
        report(rollout, ok=3)
        rollouts.append(rollout)

    errors, results = run_together(services.advance_plans, services.advance_plans)

    assert errors == []
    advanced = sorted(a["rollout_id"] for r in results for a in r.advanced)
    assert advanced == sorted(r.pk for r in rollouts)  # each rollout moved by exactly one run
    for rollout in rollouts:
        assert percentage_of(rollout) == 25  # one stage, not two
        assert RolloutPlan.objects.get(rollout=rollout).current_stage == 1
        assert (
            AuditEntry.objects.filter(
                object_type="rollouts.rollout", object_id=str(rollout.pk), action="rollout.percentage_changed"
            ).count()
            == 1
        )


def test_an_operator_skip_racing_the_beat_moves_the_plan_once():
    rollout = start_rollout(percentage="5")
    services.attach_plan(
        rollout.pk, actor="user:olivia", stages=[{"percentage": 5}, {"percentage": 25}, {"percentage": 50}]
    )

    def skip():
        try:
            services.skip_stage(rollout.pk, actor="user:olivia")
        except services.Conflict:
            return "lost"
        return "skipped"

    errors, results = run_together(services.advance_plans, skip)
    assert errors == []
    assert percentage_of(rollout) == 25
    assert RolloutPlan.objects.get(rollout=rollout).current_stage == 1
