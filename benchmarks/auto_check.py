"""Benchmark: the Sira auto-check over 1,000,000 upgrade reports and 200 active rollouts.

Loads the data with set-based SQL into the benchmark database (PostgreSQL), then times the
Python service (what beat, HTTP and the command run) and the SQL function, each run inside a
transaction that is rolled back so every repetition sees the same fleet.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/molam_bench .venv/bin/python benchmarks/auto_check.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molam_upgrades.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/molam_bench")
os.environ.setdefault("LOG_LEVEL", "ERROR")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from benchmarks.timing import timed  # noqa: E402
from rollouts.services import auto_pause_failing_rollouts  # noqa: E402

ROLLOUTS = int(os.environ.get("ROLLOUTS", 200))
REPORTS = int(os.environ.get("REPORTS", 1_000_000))
FAILING = int(os.environ.get("FAILING", 20))  # rollouts whose error rate is above threshold
REPEAT = int(os.environ.get("REPEAT", 5))  # RELOAD=1 reloads the data


def load() -> None:
    call_command("migrate", verbosity=0)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM plugin_upgrade_logs WHERE plugin_name LIKE 'bench-%%'")
        loaded = cur.fetchone()[0]
        cur.execute(
            "SELECT count(*) FROM plugin_rollouts WHERE plugin_name LIKE 'bench-%%' AND status = 'active'"
        )
        if loaded == REPORTS and cur.fetchone()[0] == ROLLOUTS and not os.environ.get("RELOAD"):
            print(f"reusing {REPORTS:,} reports already loaded")
            return
        print(f"loading {ROLLOUTS} rollouts and {REPORTS:,} upgrade reports …", flush=True)
        started = time.perf_counter()
        cur.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        cur.execute(
            "UPDATE plugin_rollouts SET status = 'completed' WHERE plugin_name LIKE 'bench-%%' AND status IN ('active', 'paused')"
        )
        cur.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        cur.execute("DELETE FROM plugin_upgrade_logs WHERE plugin_name LIKE 'bench-%%'")
        cur.execute(
            """
            INSERT INTO plugin_rollouts (plugin_name, version, rollout_percentage, rollout_strategy, status,
                target_countries, target_tiers, sira_monitoring, error_threshold, min_sample_size, auto_paused,
                created_by, created_at, updated_at, metadata)
            SELECT 'bench-' || g, '2.0.0', 25, 'random', 'active', '[]', '[]', TRUE, 0.03, 10, FALSE,
                   'bench', now() - interval '7 days', now(), '{}'
            FROM generate_series(1, %s) g
            """,
            [ROLLOUTS],
        )
        # Failing rollouts get 10 % errors; the others 1 %.
        cur.execute(
            """
            INSERT INTO plugin_upgrade_logs (id, merchant_id, plugin_name, from_version, to_version, status,
                                             created_at)
            SELECT gen_random_uuid(), gen_random_uuid(), 'bench-' || (1 + g %% %s), '1.9.0', '2.0.0',
                   CASE WHEN (1 + g %% %s) <= %s THEN (CASE WHEN random() < 0.10 THEN 'failed' ELSE 'success' END)
                        ELSE (CASE WHEN random() < 0.01 THEN 'rolled_back' ELSE 'success' END) END,
                   now() - (g %% 500000) * interval '1 second'
            FROM generate_series(1, %s) g
            """,
            [ROLLOUTS, ROLLOUTS, FAILING, REPORTS],
        )
        print(f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE plugin_upgrade_logs")
        cur.execute("VACUUM ANALYZE plugin_rollouts")


def main() -> None:
    connection.ensure_connection()
    with connection.cursor() as cur:
        cur.execute("SET statement_timeout = 0")
    load()
    python_runs, sql_runs = [], []
    for _ in range(REPEAT):
        elapsed, paused = timed(lambda: auto_pause_failing_rollouts(source="command"))
        python_runs.append(elapsed)
        assert len(paused) == FAILING, len(paused)

        def sql():
            with connection.cursor() as cur:
                cur.execute("SELECT auto_pause_failing_rollouts()")
                return cur.fetchone()[0]

        elapsed, count = timed(sql)
        sql_runs.append(elapsed)
        assert count == FAILING, count

    def fmt(xs):
        return f"median {statistics.median(xs) * 1000:.0f} ms, min {min(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"

    print(
        f"auto-check over {REPORTS:,} reports, {ROLLOUTS} active rollouts, {FAILING} paused per run ({REPEAT} runs):"
    )
    print(f"  python service (beat/HTTP/command): {fmt(python_runs)}")
    print(f"  SQL auto_pause_failing_rollouts():  {fmt(sql_runs)}")


if __name__ == "__main__":
    main()
