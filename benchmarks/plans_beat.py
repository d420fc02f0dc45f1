"""Benchmark: the plan beat (``plans.services.advance_plans``) at 1,000 active rollouts.

Loads, with set-based SQL, 1,000 active rollouts that each follow a 3-stage plan
(5 → 25 → 100 %, 60 min soak, 3 merchants) and REPORTS upgrade reports spread over them, then
times two runs of the beat, each inside a transaction that is rolled back so every repetition
sees the same fleet:

- idle: every stage is still soaking, nothing moves (the steady state, once a minute);
- busy: an hour later every stage is ready, so the run advances all 1,000 rollouts (each one a
  locked, claimed, audited ``change_rollout``) — the worst case.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/molam_plans_bench .venv/bin/python benchmarks/plans_beat.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molam_upgrades.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/molam_plans_bench")
os.environ.setdefault("LOG_LEVEL", "ERROR")
# Production settings (DEBUG off: no query log kept in memory), with throwaway secrets.
os.environ.setdefault("SECRET_KEY", "benchmark-only")
os.environ.setdefault("METRICS_TOKEN", "benchmark-only")

import django  # noqa: E402

django.setup()

from django.core.management import call_command, get_commands  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from plans.services import advance_plans  # noqa: E402

ROLLOUTS = int(os.environ.get("ROLLOUTS", 1000))
REPORTS = int(os.environ.get("REPORTS", 1_000_000))
REPEAT = int(os.environ.get("REPEAT", 5))  # RELOAD=1 reloads the data
PREFIX = "plbench-"


def load() -> None:
    call_command("migrate", verbosity=0)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM plugin_upgrade_logs WHERE plugin_name LIKE %s", [PREFIX + "%"])
        loaded = cur.fetchone()[0]
        cur.execute(
            "SELECT count(*) FROM rollout_plans p JOIN plugin_rollouts r ON r.id = p.rollout_id "
            "WHERE r.plugin_name LIKE %s AND r.status = 'active'",
            [PREFIX + "%"],
        )
        if loaded == REPORTS and cur.fetchone()[0] == ROLLOUTS and not os.environ.get("RELOAD"):
            print(f"reusing {ROLLOUTS:,} planned rollouts and {REPORTS:,} reports already loaded")
            return
        print(f"loading {ROLLOUTS:,} rollouts with plans and {REPORTS:,} upgrade reports …", flush=True)
        started = time.perf_counter()
        cur.execute("DELETE FROM rollout_plans WHERE rollout_id IN (SELECT id FROM plugin_rollouts WHERE plugin_name LIKE %s)", [PREFIX + "%"])
        cur.execute(
            "UPDATE plugin_rollouts SET status = 'completed' WHERE plugin_name LIKE %s AND status IN ('active', 'paused')",
            [PREFIX + "%"],
        )
        cur.execute("DELETE FROM plugin_upgrade_logs WHERE plugin_name LIKE %s", [PREFIX + "%"])
        cur.execute(
            """
            INSERT INTO plugin_rollouts (plugin_name, version, rollout_percentage, rollout_strategy, status,
                target_countries, target_tiers, sira_monitoring, error_threshold, min_sample_size, auto_paused,
                created_by, created_at, updated_at, metadata)
            SELECT %s || g, '2.0.0', 5, 'random', 'active', '[]', '[]', TRUE, 0.03, 10, FALSE,
                   'bench', now() - interval '1 day', now(), '{}'
            FROM generate_series(1, %s) g
            """,
            [PREFIX, ROLLOUTS],
        )
        cur.execute(
            """
            INSERT INTO rollout_plans (rollout_id, template_id, template_name, current_stage, stage_started_at,
                soak_started_at, held, held_reason, held_by, finished_at, time_zone, windows, created_by,
                created_at, updated_at)
            SELECT id, NULL, 'bench', 0, now(), now(), FALSE, '', '', NULL, 'Africa/Dakar',
                   '[{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "00:00"}]',
                   'bench', now(), now()
            FROM plugin_rollouts WHERE plugin_name LIKE %s AND status = 'active'
            """,
            [PREFIX + "%"],
        )
        cur.execute(
            """
            INSERT INTO rollout_plan_stages (plan_id, position, percentage, min_soak_minutes, min_merchants,
                max_error_rate, gate, entered_at, left_at)
            SELECT p.id, s.position, s.percentage, 60, 3, NULL, 'rate',
                   CASE WHEN s.position = 0 THEN now() END, NULL
            FROM rollout_plans p
            JOIN plugin_rollouts r ON r.id = p.rollout_id AND r.plugin_name LIKE %s
            CROSS JOIN (VALUES (0, 5), (1, 25), (2, 100)) AS s(position, percentage)
            """,
            [PREFIX + "%"],
        )
        # Healthy rollouts: 1 % of reports failed, well under the 3 % threshold.
        cur.execute(
            """
            INSERT INTO plugin_upgrade_logs (id, merchant_id, plugin_name, from_version, to_version, status, created_at)
            SELECT gen_random_uuid(), gen_random_uuid(), %s || (1 + g %% %s), '1.9.0', '2.0.0',
                   CASE WHEN random() < 0.01 THEN 'failed' ELSE 'success' END,
                   now() - (g %% 3600) * interval '1 second'
            FROM generate_series(1, %s) g
            """,
            [PREFIX, ROLLOUTS, REPORTS],
        )
        print(f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
    if "rebuild_aggregates" in get_commands():
        # Rows inserted by SQL bypass the report counters Sira (and so the gates) read.
        started = time.perf_counter()
        call_command("rebuild_aggregates", verbosity=0)
        print(f"aggregates rebuilt in {time.perf_counter() - started:.1f} s", flush=True)
    with connection.cursor() as cur:
        for table in ("plugin_upgrade_logs", "plugin_rollouts", "rollout_plans", "rollout_plan_stages"):
            cur.execute(f"VACUUM ANALYZE {table}")


class _Undo(Exception):
    pass


def timed(run) -> tuple[float, object]:
    result = None
    started = time.perf_counter()
    try:
        with transaction.atomic():
            result = run()
            elapsed = time.perf_counter() - started
            raise _Undo
    except _Undo:
        pass
    return elapsed, result


def main() -> None:
    connection.ensure_connection()
    with connection.cursor() as cur:
        cur.execute("SET statement_timeout = 0")
    load()
    idle, busy = [], []
    for _ in range(REPEAT):
        now = timezone.now()
        elapsed, report = timed(lambda now=now: advance_plans(now=now))
        assert report.checked >= ROLLOUTS and not report.advanced, report.as_dict()
        idle.append(elapsed)
        elapsed, report = timed(lambda now=now: advance_plans(now=now + timedelta(hours=2)))
        assert len(report.advanced) == ROLLOUTS, (len(report.advanced), report.waiting)
        busy.append(elapsed)

    def fmt(xs):
        return f"median {statistics.median(xs) * 1000:.0f} ms, min {min(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"

    print(f"plan beat at {ROLLOUTS:,} active planned rollouts over {REPORTS:,} reports ({REPEAT} runs):")
    print(f"  idle (every stage soaking, nothing moves): {fmt(idle)}")
    print(f"  busy (all {ROLLOUTS:,} advance one stage):      {fmt(busy)}  = {statistics.median(busy) / ROLLOUTS * 1000:.2f} ms per advance")


if __name__ == "__main__":
    main()
