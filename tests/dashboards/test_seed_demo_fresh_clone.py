"""``seed_demo`` on a fresh clone: no ``var/`` folder, the embedded broker, no Redis, no worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from molam_upgrades.models import Alert
from rollouts.models import Rollout

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_seed_demo_runs_on_a_fresh_clone_and_queues_its_alerts(tmp_path):
    if connection.vendor != "postgresql":
        pytest.fail("needs PostgreSQL (set DATABASE_URL): the command runs in its own process")
    db = connection.settings_dict
    var = tmp_path / "clone" / "var"  # does not exist yet, as after `git clone`
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        DEBUG="1",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        MOLAM_VAR_DIR=str(var),
        CELERY_TASK_ALWAYS_EAGER="0",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Demo data ready" in result.stdout
    assert Rollout.objects.count() >= 5
    alerts = Alert.objects.all()
    assert alerts.count() >= 2 and all(alert.status == "pending" for alert in alerts)
    # Each alert's delivery waits in the embedded broker for a worker.
    queued = list((var / "celery-broker").iterdir())
    assert len(queued) == alerts.count(), result.stderr[-2000:]
