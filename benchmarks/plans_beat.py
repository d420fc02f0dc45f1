"""Benchmark: the plan beat (``plans.services.advance_plans``) at 1,000 active rollouts.

Loads 1,000 active rollouts that each follow a 3-stage plan (5 → 25 → 100 %, 60 min soak,
3 merchants; ORM bulk inserts) and REPORTS upgrade reports spread over them (set-based SQL; about
50 cohort merchants per rollout; the first rollout's reports all failed, the others' none), rebuilds the report aggregates, then times two runs
of the beat, each inside a transaction that is rolled back so every repetition sees the same fleet:

- idle: every stage is still soaking, nothing moves (the steady state, once a minute);
- busy: an hour later every stage has soaked, so the run judges all 1,000 gates and advances 999
  rollouts (each one a locked, claimed, audited ``change_rollout``); the failing one waits.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/molam_plans_bench .venv/bin/python benchmarks/plans_beat.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
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
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from benchmarks.timing import timed  # noqa: E402
from plans.models import PlanStage, RolloutPlan  # noqa: E402
from plans.services import advance_plans  # noqa: E402
from rollouts.models import Rollout  # noqa: E402

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
        bench_plans = "SELECT p.id FROM rollout_plans p JOIN plugin_rollouts r ON r.id = p.rollout_id WHERE r.plugin_name LIKE %s"
        cur.execute(f"DELETE FROM rollout_plan_stages WHERE plan_id IN ({bench_plans})", [PREFIX + "%"])
        cur.execute(f"DELETE FROM rollout_plans WHERE id IN ({bench_plans})", [PREFIX + "%"])
        cur.execute(
            "UPDATE plugin_rollouts SET status = 'completed' WHERE plugin_name LIKE %s AND status IN ('active', 'paused')",
            [PREFIX + "%"],
        )
        cur.execute("DELETE FROM plugin_upgrade_logs WHERE plugin_name LIKE %s", [PREFIX + "%"])
    # Rollouts, plans and stages through the ORM (1,000 rows each: the models' defaults apply).
    now = timezone.now()
    rollouts = Rollout.objects.bulk_create(
        Rollout(
            plugin_name=f"{PREFIX}{n}",
            version="2.0.0",
            rollout_percentage=Decimal(5),
            created_by="bench",
            created_at=now - timedelta(days=1),
        )
        for n in range(1, ROLLOUTS + 1)
    )
    windows = [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "00:00"}]
    plans = RolloutPlan.objects.bulk_create(
        RolloutPlan(
            rollout=r, template_name="bench", time_zone="Africa/Dakar", windows=windows, created_by="bench"
        )
        for r in rollouts
    )
    PlanStage.objects.bulk_create(
        PlanStage(
            plan=plan,
            position=i,
            percentage=Decimal(pct),
            min_soak_minutes=60,
            min_merchants=3,
            entered_at=now if i == 0 else None,
        )
        for plan in plans
        for i, pct in enumerate((5, 25, 100))
    )
    with connection.cursor() as cur:
        # Every report of the first rollout failed (its gate holds it); the others are all healthy. Reports carry the
        # rollout they belong to and whether their merchant is in its 5 % cohort (the bucket rule
        # of rollouts.cohort, in SQL), as the report service stamps them, when the table has them.
        cur.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'plugin_upgrade_logs' AND column_name = 'in_cohort'"
        )
        stamped = cur.fetchone()[0] == 1
        cur.execute(
            f"""
            INSERT INTO plugin_upgrade_logs (id, merchant_id, plugin_name, from_version, to_version, status, created_at
                                             {", rollout_id, in_cohort" if stamped else ""})
            SELECT gen_random_uuid(), src.m, r.plugin_name, '1.9.0', '2.0.0',
                   CASE WHEN src.g %% %s = 0 THEN 'failed' ELSE 'success' END,
                   now() - (src.g %% 3600) * interval '1 second'
                   {", r.id, ('x' || substr(encode(sha256(convert_to(r.plugin_name || ':2.0.0:' || src.m::text, 'UTF8')), 'hex'), 1, 8))::bit(32)::bigint %% 10000 < 500" if stamped else ""}
            FROM (SELECT g, gen_random_uuid() AS m FROM generate_series(1, %s) g) src
            JOIN plugin_rollouts r ON r.plugin_name = %s || (1 + src.g %% %s) AND r.status = 'active'
            """,
            [ROLLOUTS, REPORTS, PREFIX, ROLLOUTS],
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
        assert len(report.advanced) == ROLLOUTS - 1 and report.waiting == 1, report.as_dict()
        busy.append(elapsed)

    def fmt(xs):
        return f"median {statistics.median(xs) * 1000:.0f} ms, min {min(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"

    print(f"plan beat at {ROLLOUTS:,} active planned rollouts over {REPORTS:,} reports ({REPEAT} runs):")
    print(f"  idle (every stage soaking, nothing moves): {fmt(idle)}")
    print(
        f"  busy ({ROLLOUTS - 1:,} advance one stage, 1 held by its gate): {fmt(busy)}"
        f" = {statistics.median(busy) / (ROLLOUTS - 1) * 1000:.2f} ms per advance"
    )


if __name__ == "__main__":
    main()
