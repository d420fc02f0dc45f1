"""Benchmark: ops reads over a large history (10 M upgrade reports, 1 M rollbacks, 1,000 rollouts).

For each size (``SIZES``, upgrade reports; rollbacks are a tenth of that) it drops and recreates
the throwaway database ``molam_scale``, migrates it with ``manage.py migrate``, loads the history
with set-based SQL (``generate_series``; the secondary indexes are dropped during the load and
rebuilt from their own definitions afterwards), runs ``manage.py rebuild_aggregates`` when the
project has it, ``VACUUM ANALYZE``, then starts the production server (granian, ``DEBUG=0``,
``METRICS_CACHE_SECONDS=0`` so every scrape pays its full price) and times each read:

- the Sira check, Python service (what beat, ``POST rollouts/auto-check`` and the command run)
  and SQL ``auto_pause_failing_rollouts()``, each in a transaction rolled back afterwards so
  every repetition pauses the same ``FAILING`` rollouts;
- over HTTP: ``/metrics``, ``/ops/rollout-control``, ``/ops/rollback-dashboard``,
  ``GET rollback/stats``, ``GET rollback/history`` deep page by ``offset`` and by keyset
  (``before=<created_at>,<id>``, when the API has it);

first with all 1,000 rollouts active, then with 20 active. Medians of ``REPEAT`` runs after one
warm-up. Prints a table and writes ``var/bench/scale-<time>/results.json``.

    .venv/bin/python benchmarks/scale.py                  # SIZES=100000,10000000 REPEAT=5

To iterate on one read without reloading 10 M rows each time (the load takes ~10 minutes):

    RELOAD=0 SIZES=10000000 ACTIVE=20 READS=metrics,rollback_dashboard,rollback_stats \
        .venv/bin/python benchmarks/scale.py

``RELOAD=0`` keeps ``molam_scale`` when it already holds the size's history (same number of
rollouts, upgrade reports and rollbacks; it is migrated, not reloaded), and loads it otherwise.
``READS`` (names as in the table, without the ``(N active)`` suffix) times only those reads;
``ACTIVE`` lists the active-rollout counts to time (default ``ROLLOUTS,FEW_ACTIVE``; the
dashboard, stats and history reads run with ``FEW_ACTIVE``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_URL = os.environ.get("SCALE_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = os.environ.get("SCALE_DB", "molam_scale")
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = os.environ.get("SCALE_REDIS_URL", "redis://127.0.0.1:6379/8")
SIZES = [int(s) for s in os.environ.get("SIZES", "100000,10000000").split(",") if s]
ROLLOUTS = int(os.environ.get("ROLLOUTS", 1000))
FEW_ACTIVE = int(os.environ.get("FEW_ACTIVE", 20))
FAILING = int(os.environ.get("FAILING", 10))  # rollouts (among the first FEW_ACTIVE) failing at ~10 %
REPEAT = int(os.environ.get("REPEAT", 5))
DEEP_OFFSET = int(os.environ.get("DEEP_OFFSET", 5000))
RELOAD = os.environ.get("RELOAD", "1") != "0"
READ_NAMES = (
    "sira_python", "sira_sql", "metrics", "rollout_control", "rollback_dashboard", "rollback_stats",
    "history_offset", "history_keyset",
)  # fmt: skip
READS_PER_PASS = ("sira_python", "sira_sql", "metrics", "rollout_control")  # timed at every ACTIVE count
READS = [r.strip() for r in os.environ.get("READS", ",".join(READ_NAMES)).split(",") if r.strip()]
ACTIVE = [int(a) for a in os.environ.get("ACTIVE", f"{ROLLOUTS},{FEW_ACTIVE}").split(",") if a]
if unknown := set(READS) - set(READ_NAMES):
    raise SystemExit(f"READS: unknown read(s) {', '.join(sorted(unknown))}; known: {', '.join(READ_NAMES)}")
HOT_PLUGIN = "scale-0001"  # a tenth of all rollbacks: the plugin whose history has deep pages

SERVER_ENV = {
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "CACHE_KEY_PREFIX": "scale-bench",
    "DEBUG": "0",
    "SECRET_KEY": "scale-bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "0",
    "SESSION_COOKIE_SECURE": "0",
    "CSRF_COOKIE_SECURE": "0",
    "LOG_LEVEL": "ERROR",
    "METRICS_CACHE_SECONDS": "0",
    "METRICS_TOKEN": "scale-bench-metrics-token",
    # The server imports this checkout, whatever else the virtualenv points at.
    "PYTHONPATH": str(ROOT),
}
os.environ.update(SERVER_ENV)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molam_upgrades.settings")

import django  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402

django.setup()

from django.core.management import get_commands  # noqa: E402
from django.db import connection, transaction  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**os.environ}, check=True)


# --- loading ------------------------------------------------------------------------------------


def recreate_database() -> None:
    connection.close()
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [DB_NAME],
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
        admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    manage("migrate", "--noinput", "-v0")


def already_loaded(reports: int) -> bool:
    """Whether ``molam_scale`` holds this size's history (exact counts; ~1 s at 10 M)."""
    connection.close()
    try:
        with psycopg.connect(DATABASE_URL) as db:
            counts = db.execute(
                "SELECT (SELECT count(*) FROM plugin_rollouts), (SELECT count(*) FROM plugin_upgrade_logs), "
                "(SELECT count(*) FROM plugin_rollback_history WHERE NOT sira_triggered)"
            ).fetchone()
    except psycopg.Error:  # no database, or not migrated
        return False
    return counts == (ROLLOUTS, reports, max(reports // 10, 1000))


def secondary_indexes(cur, table: str) -> list[tuple[str, str]]:
    cur.execute(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.tablename = %s AND NOT EXISTS (
                  SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
        [table],
    )
    return cur.fetchall()


def load(reports: int) -> dict[str, float]:
    """The history, set-based. Returns seconds per step."""
    rollbacks = max(reports // 10, 1000)
    merchants = max(reports // 2, ROLLOUTS)  # each merchant reports about twice, always on one plugin
    steps: dict[str, float] = {}
    with psycopg.connect(DATABASE_URL, autocommit=True) as db, db.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '512MB'")
        cur.execute("SET synchronous_commit = off")
        started = time.perf_counter()
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'plugin_rollouts'")
        gate = "wilson_gate" in {row[0] for row in cur.fetchall()}
        cur.execute(
            f"""
            INSERT INTO plugin_rollouts (id, plugin_name, version, rollout_percentage, rollout_strategy, status,
                target_countries, target_tiers, sira_monitoring, error_threshold, min_sample_size, auto_paused,
                created_by, created_at, updated_at, metadata{", wilson_gate" if gate else ""})
            SELECT g, 'scale-' || lpad(g::text, 4, '0'), '2.0.0', 100, 'random', 'active', '[]', '[]', TRUE, 0.03, 10,
                   FALSE, 'bench', now() - interval '30 days', now(), '{{}}'{", FALSE" if gate else ""}
            FROM generate_series(1, %s) g
            """,
            [ROLLOUTS],
        )
        cur.execute("SELECT setval(pg_get_serial_sequence('plugin_rollouts', 'id'), %s)", [ROLLOUTS])
        dropped = {t: secondary_indexes(cur, t) for t in ("plugin_upgrade_logs", "plugin_rollback_history")}
        for indexes in dropped.values():
            for name, _ in indexes:
                cur.execute(f'DROP INDEX "{name}"')
        # Merchant k reports on plugin k % ROLLOUTS (j: its rank among that plugin's merchants),
        # always with the same outcome: on the first FAILING plugins 10 % of merchants fail, on the
        # others 1 % roll back (threshold 3 %), so every size pauses exactly FAILING rollouts.
        # Once reports carry the rollout they belong to (and whether their merchant is in its
        # cohort: every merchant is, at 100 %), the loader stamps them as the service would.
        cur.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'plugin_upgrade_logs' AND column_name = 'rollout_id'"
        )
        stamped = cur.fetchone()[0] == 1
        cur.execute(
            f"""
            INSERT INTO plugin_upgrade_logs (id, merchant_id, plugin_name, from_version, to_version, status,
                                             rollback_status, duration_ms, created_at
                                             {", rollout_id, in_cohort" if stamped else ""})
            SELECT gen_random_uuid(), md5('m' || k)::uuid, 'scale-' || lpad(p::text, 4, '0'), '1.9.0', '2.0.0', s,
                   CASE WHEN s = 'success' THEN 'not_required' END, 2000,
                   now() - interval '29 days' + (g::float8 / %(n)s) * interval '29 days'
                   {", p, TRUE" if stamped else ""}
            FROM (SELECT g, g %% %(m)s AS k, 1 + (g %% %(m)s) %% %(r)s AS p,
                         (g %% %(m)s) / %(r)s AS j FROM generate_series(1, %(n)s) g) src,
                 LATERAL (SELECT CASE WHEN p <= %(f)s THEN (CASE WHEN j %% 10 = 3 THEN 'failed' ELSE 'success' END)
                                      ELSE (CASE WHEN j %% 100 = 50 THEN 'rolled_back' ELSE 'success' END)
                                 END AS s) st
            """,
            {"n": reports, "m": merchants, "r": ROLLOUTS, "f": FAILING},
        )
        steps["reports_insert_s"] = time.perf_counter() - started
        started = time.perf_counter()
        # A tenth of the rollbacks are on HOT_PLUGIN; ~8 % fail; spread over a year; 0.1 % in progress.
        cur.execute(
            """
            INSERT INTO plugin_rollback_history (rollback_id, merchant_id, plugin_name, from_version, to_version,
                rollback_trigger, success, duration_ms, files_restored, db_restored, rollback_reason, error_message,
                sira_triggered, initiated_by, created_at, completed_at)
            SELECT gen_random_uuid(), md5('r' || g)::uuid,
                   CASE WHEN g %% 10 = 0 THEN %(hot)s ELSE 'scale-' || lpad((1 + g %% %(r)s)::text, 4, '0') END,
                   '2.0.0', '1.9.0', (ARRAY['automatic', 'manual', 'operator_forced'])[1 + g %% 3],
                   CASE WHEN g %% 1000 = 7 THEN NULL ELSE random() > 0.08 END, 500 + (random() * 4000)::int, 120,
                   TRUE, 'smoke test failed', NULL, FALSE, 'bench', c,
                   CASE WHEN g %% 1000 = 7 THEN NULL ELSE c + interval '3 seconds' END
            FROM (SELECT g, now() - (g::float8 / %(n)s) * interval '365 days' AS c
                  FROM generate_series(1, %(n)s) g) src
            """,
            {"n": rollbacks, "r": ROLLOUTS, "hot": HOT_PLUGIN},
        )
        steps["rollbacks_insert_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for indexes in dropped.values():
            for _, definition in indexes:
                cur.execute(definition)
        steps["indexes_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for table in ("plugin_upgrade_logs", "plugin_rollback_history", "plugin_rollouts"):
            cur.execute(f"VACUUM ANALYZE {table}")
        steps["vacuum_s"] = time.perf_counter() - started
    if "rebuild_aggregates" in get_commands():
        started = time.perf_counter()
        manage("rebuild_aggregates")
        steps["rebuild_aggregates_s"] = time.perf_counter() - started
        with psycopg.connect(DATABASE_URL, autocommit=True) as db:
            db.execute("VACUUM ANALYZE")
    return steps


def set_active(count: int) -> None:
    """The first ``count`` rollouts active, the others completed (a direct write: this is a bench)."""
    with psycopg.connect(DATABASE_URL, autocommit=True) as db:
        db.execute(
            "UPDATE plugin_rollouts SET status = CASE WHEN plugin_name <= %s THEN 'active' ELSE 'completed' END, "
            "completed_at = CASE WHEN plugin_name <= %s THEN NULL ELSE now() END, auto_paused = FALSE, "
            "paused_at = NULL, paused_reason = NULL, paused_by = NULL",
            [f"scale-{count:04d}"] * 2,
        )
        db.execute("VACUUM ANALYZE plugin_rollouts")


# --- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, out: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(out / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "2", "--blocking-threads", "2", "--runtime-mode", "st", "--log-level", "warning",
             "--no-access-log", "molam_upgrades.wsgi:application"],
            cwd=ROOT, env={**os.environ}, stdout=self.log, stderr=self.log,
        )  # fmt: skip
        for _ in range(100):
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).ok:
                    time.sleep(3)  # the second worker may still be importing: let it settle
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit("granian did not start; see server.log")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def credentials() -> tuple[str, str]:
    """(API token of an ops_viewer, session cookie of an ops_viewer person)."""
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from molam_upgrades.credentials import create_api_client

    _, token = create_api_client(
        name=f"scale-viewer-{time.time_ns()}", role="ops_viewer", merchant_id=None, actor="bench"
    )
    user, _ = User.objects.get_or_create(username="scale-viewer")
    user.groups.add(Group.objects.get_or_create(name="ops_viewer")[0])
    client = Client()
    client.force_login(user)
    return token, client.cookies["sessionid"].value


# --- timing -------------------------------------------------------------------------------------


def summary(times: list[float], **extra) -> dict:
    return {
        "median_ms": round(statistics.median(times) * 1000, 1),
        "min_ms": round(min(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "runs": len(times),
        **extra,
    }


def time_http(session: requests.Session, url: str, **kwargs) -> dict:
    sizes, times = [], []
    for i in range(REPEAT + 1):
        started = time.perf_counter()
        response = session.get(url, timeout=600, **kwargs)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}: {response.text[:300]}")
        if i:  # the first run warms the server's caches and connections
            times.append(elapsed)
            sizes.append(len(response.content))
    return summary(times, bytes=max(sizes))


class _Undo(Exception):
    pass


def time_in_rolled_back_transaction(run, expect: int) -> dict:
    times = []
    for i in range(REPEAT + 1):
        try:
            with transaction.atomic():
                started = time.perf_counter()
                result = run()
                elapsed = time.perf_counter() - started
                raise _Undo
        except _Undo:
            pass
        if result != expect:
            raise SystemExit(f"{run.__name__} paused {result} rollouts, expected {expect}")
        if i:
            times.append(elapsed)
    return summary(times, paused=expect)


def sira_python() -> int:
    from rollouts.services import auto_pause_failing_rollouts

    return len(auto_pause_failing_rollouts(source="command"))


def sira_sql() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT auto_pause_failing_rollouts()")
        return cur.fetchone()[0]


def history_cursor(position: int) -> str | None:
    """``<created_at>,<id>`` of the row just before the deep page (the keyset the API takes)."""
    with psycopg.connect(DATABASE_URL) as db:
        row = db.execute(
            "SELECT created_at, rollback_id FROM plugin_rollback_history WHERE plugin_name = %s AND success = FALSE "
            "ORDER BY created_at DESC, rollback_id DESC OFFSET %s LIMIT 1",
            [HOT_PLUGIN, max(position - 1, 0)],
        ).fetchone()
    return f"{row[0].isoformat()},{row[1]}" if row else None


def keyset_supported(session: requests.Session, base: str) -> bool:
    """The API refuses a malformed ``before`` (400) once it supports keyset pagination."""
    response = session.get(
        f"{base}/api/plugins/rollback/history", params={"before": "not-a-cursor"}, timeout=60
    )
    return response.status_code == 400


def measure(reports: int, out: Path) -> dict:
    results: dict = {"reports": reports, "rollbacks": max(reports // 10, 1000), "rollouts": ROLLOUTS}
    if not RELOAD and already_loaded(reports):
        log(f"== {reports:,} reports: {DB_NAME} already holds them (RELOAD=0), migrating only")
        manage("migrate", "--noinput", "-v0")
        results["load"] = {"reused": True}
    else:
        log(f"== {reports:,} reports: recreating {DB_NAME} and migrating")
        recreate_database()
        started = time.perf_counter()
        results["load"] = load(reports)
        results["load"]["total_s"] = time.perf_counter() - started
        log(
            f"loaded in {results['load']['total_s']:.0f} s: {json.dumps({k: round(v, 1) for k, v in results['load'].items()})}"
        )
    connection.close()
    token, session_id = credentials()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    page = requests.Session()
    page.cookies.set("sessionid", session_id)
    reads: dict[str, dict] = {}
    for active in ACTIVE:
        if not set(READS) & (set(READ_NAMES) if active == FEW_ACTIVE else set(READS_PER_PASS)):
            continue  # none of the chosen reads runs in this pass
        set_active(active)
        connection.close()
        server = Server(out)
        try:
            label = f"{active} active"
            log(f"timing with {label}")
            # With FAILING rollouts active, every Sira run pauses them all (rolled back after).
            expect = min(FAILING, active)
            if "sira_python" in READS:
                reads[f"sira_python ({label})"] = time_in_rolled_back_transaction(sira_python, expect)
            if "sira_sql" in READS:
                reads[f"sira_sql ({label})"] = time_in_rolled_back_transaction(sira_sql, expect)
            if "metrics" in READS:
                reads[f"metrics ({label})"] = time_http(
                    page,
                    f"{server.base}/metrics",
                    headers={"Authorization": f"Bearer {SERVER_ENV['METRICS_TOKEN']}"},
                )
            if "rollout_control" in READS:
                reads[f"rollout_control ({label})"] = time_http(page, f"{server.base}/ops/rollout-control")
            if active == FEW_ACTIVE:
                if "rollback_dashboard" in READS:
                    reads["rollback_dashboard"] = time_http(page, f"{server.base}/ops/rollback-dashboard")
                if "rollback_stats" in READS:
                    reads["rollback_stats"] = time_http(api, f"{server.base}/api/plugins/rollback/stats")
                query = {"plugin_name": HOT_PLUGIN, "success": "false", "offset": DEEP_OFFSET}
                if "history_offset" in READS:
                    reads["history_offset"] = time_http(
                        api, f"{server.base}/api/plugins/rollback/history?{urlencode(query)}"
                    )
                cursor = history_cursor(DEEP_OFFSET) if "history_keyset" in READS else None
                if cursor and keyset_supported(api, server.base):
                    query = {"plugin_name": HOT_PLUGIN, "success": "false", "before": cursor}
                    reads["history_keyset"] = time_http(
                        api, f"{server.base}/api/plugins/rollback/history?{urlencode(query)}"
                    )
            for name, figures in reads.items():
                if name.endswith(f"({label})") or active == FEW_ACTIVE and "(" not in name:
                    log(
                        f"  {name:36s} median {figures['median_ms']:9.1f} ms  (min {figures['min_ms']}, max {figures['max_ms']})"
                    )
        finally:
            server.stop()
    results["reads"] = reads
    return results


def main() -> None:
    if not shutil.which("psql"):
        raise SystemExit("psql is missing (PostgreSQL client)")
    subprocess.run([str(ROOT / "bin/ensure-services")], check=True, stdout=subprocess.DEVNULL)
    manage("collectstatic", "--noinput", "-v0")  # DEBUG=0 serves hashed static files from a manifest
    out = ROOT / "var/bench" / f"scale-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    runs = [measure(size, out) for size in SIZES]
    (out / "results.json").write_text(json.dumps(runs, indent=2))
    names = list(dict.fromkeys(name for run in runs for name in run["reads"]))
    print("\nmedian ms per read (" + ", ".join(f"{r['reports']:,} reports" for r in runs) + "):")
    for name in names:
        cells = [
            f"{run['reads'][name]['median_ms']:>10.1f}" if name in run["reads"] else f"{'—':>10}"
            for run in runs
        ]
        print(f"  {name:36s} " + " ".join(cells))
    print(f"raw results in {out}/results.json")


if __name__ == "__main__":
    main()
