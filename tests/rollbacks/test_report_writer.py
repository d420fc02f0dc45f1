"""Group commit of upgrade reports (``rollbacks.report_writer``): reports sent at the same moment
share statements, no report or count is lost, one bad report fails alone, and a request waits
for its commit at most ``REPORT_WRITE_TIMEOUT_S``."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from concurrent.futures import Future
from datetime import timedelta

import psycopg
import pytest
from django.db import DatabaseError, connection, connections
from django.utils import timezone
from rest_framework.test import APIClient

from molam_upgrades import idempotency
from molam_upgrades.credentials import create_api_client
from molam_upgrades.models import IdempotencyRecord
from molam_upgrades.request_metrics import PROCESS_REGISTRY
from rollbacks import report_writer, services
from rollbacks.aggregates import verify_aggregates
from rollbacks.models import UpgradeLog
from rollbacks.reports import rollout_error_rate
from tests.factories import RolloutFactory

pytestmark = [pytest.mark.usefixtures("uses_postgres"), pytest.mark.django_db(transaction=True)]


def report(merchant_id: uuid.UUID, status: str = "success", plugin_name: str = "woocommerce") -> UpgradeLog:
    return services.new_upgrade_report(
        merchant_id=merchant_id,
        plugin_name=plugin_name,
        from_version="3.9.0",
        to_version="4.0.0",
        status=status,
    )


def writer_sample(name: str) -> float:
    return PROCESS_REGISTRY.get_sample_value(f"molam_report_writer_{name}") or 0.0


def item(merchant_id: uuid.UUID, key: str | None = None, **kwargs):
    record = idempotency.key_record("plugin:test", key, "fp", 201, {"ok": True}) if key else None
    return (report(merchant_id, **kwargs), record, Future())


def test_split_keeps_a_merchant_and_a_key_once_per_statement_in_arrival_order():
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    items = [item(a, "k1"), item(b, "k2"), item(a, "k3"), item(c, "k1"), item(a, "k4"), item(b, "k5")]
    statements = report_writer.split(items)
    # a's three reports in three statements, in order; c reuses k1 so it cannot join the first.
    assert [[items.index(i) for i in s] for s in statements] == [[0, 1], [2, 3, 5], [4]]


def test_concurrent_reports_share_statements_and_every_count_is_kept():
    rollout = RolloutFactory(
        plugin_name="woocommerce",
        version="4.0.0",
        rollout_percentage=60,
        created_at=timezone.now() - timedelta(hours=1),
    )
    merchants = [uuid.uuid4() for _ in range(12)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)
    before = {n: writer_sample(n) for n in ("reports_per_statement_count", "reports_per_statement_sum")}

    def send(worker: int) -> None:
        try:
            barrier.wait()
            for n in range(40):
                merchant = merchants[(worker * 7 + n) % len(merchants)]
                status = ("success", "failed", "rolled_back")[(worker + n) % 3]
                key = f"w{worker}-{n % 35}"  # five keys used twice: the second is refused
                record = idempotency.key_record(f"plugin:{worker}", key, "fp", 201, {"n": n})
                services.store_report(report(merchant, status), record)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert errors == []
    assert UpgradeLog.objects.count() == IdempotencyRecord.objects.count() == 8 * 35
    assert verify_aggregates() == []
    statements = writer_sample("reports_per_statement_count") - before["reports_per_statement_count"]
    reports = writer_sample("reports_per_statement_sum") - before["reports_per_statement_sum"]
    assert reports == 8 * 40  # refused keys included: their statement ran, and wrote nothing for them
    assert statements < reports  # some reports shared a statement
    rate = rollout_error_rate(rollout.pk)
    assert 0 < rate.merchants <= len(merchants)
    assert rate.reports + rate.reports_outside_cohort == 8 * 35


def test_a_report_the_database_refuses_fails_alone():
    RolloutFactory(plugin_name="woocommerce", version="4.0.0", rollout_percentage=100)
    good = [item(uuid.uuid4(), f"g{n}") for n in range(3)]
    bad = item(uuid.uuid4(), "bad", plugin_name="woo\x00commerce")  # PostgreSQL refuses NUL in text
    failed_groups = writer_sample("failed_groups_total")
    report_writer.write_statement([good[0], bad, good[1], good[2]])

    assert [f.result(timeout=0) for _, _, f in good] == [True, True, True]
    with pytest.raises((DatabaseError, ValueError)):
        bad[2].result(timeout=0)
    assert UpgradeLog.objects.count() == 3
    assert verify_aggregates() == []
    assert writer_sample("failed_groups_total") == failed_groups + 1


def scraped(client, series: str) -> float:
    """The value of ``series`` (name and labels, exactly) on the /metrics page, 0 when absent."""
    body = client.get("/metrics").content.decode()
    match = re.search(rf"^{re.escape(series)} (\S+)$", body, re.M)
    return float(match.group(1)) if match else 0.0


def test_the_writer_metrics_are_on_the_metrics_page(client):
    RolloutFactory(plugin_name="woocommerce", version="4.0.0", rollout_percentage=100)
    series = (
        "molam_report_writer_reports_per_statement_count",
        "molam_report_writer_reports_per_statement_sum",
        'molam_report_writer_reports_per_statement_bucket{le="1.0"}',
        'molam_report_writer_reports_per_statement_bucket{le="2.0"}',
        "molam_report_writer_statement_duration_seconds_count",
        "molam_report_writer_failed_groups_total",
    )
    before = {name: scraped(client, name) for name in series}
    report_writer.write_statement([item(uuid.uuid4(), "m1"), item(uuid.uuid4(), "m2")])
    bad = item(uuid.uuid4(), "m3", plugin_name="woo\x00commerce")
    report_writer.write_statement([item(uuid.uuid4(), "m4"), bad])  # fails, then one by one
    after = {name: scraped(client, name) for name in series}
    # Statements written: the pair, then m4 alone (the group and bad's own statement failed).
    assert {name: after[name] - before[name] for name in series} == {
        "molam_report_writer_reports_per_statement_count": 2,
        "molam_report_writer_reports_per_statement_sum": 3,
        'molam_report_writer_reports_per_statement_bucket{le="1.0"}': 1,
        'molam_report_writer_reports_per_statement_bucket{le="2.0"}': 2,
        "molam_report_writer_statement_duration_seconds_count": 2,
        "molam_report_writer_failed_groups_total": 1,
    }


def test_a_report_not_confirmed_in_time_is_a_503_and_its_replay_returns_it(settings):
    """The write waits behind a lock past the timeout: 503; once it commits, a replay with the same
    key returns the first answer and nothing is written twice."""
    settings.REPORT_WRITE_TIMEOUT_S = 0.5
    merchant = uuid.uuid4()
    _, token = create_api_client(name="slow", role="plugin", merchant_id=merchant, actor="test")
    body = json.dumps(
        {
            "merchant_id": str(merchant),
            "plugin_name": "woocommerce",
            "from_version": "3.9.0",
            "to_version": "4.0.0",
            "status": "success",
        }
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_IDEMPOTENCY_KEY="slow-1")
    # Another session holds the lock every report needs: the report table, in a transaction.
    dsn = connection.get_connection_params()
    with psycopg.connect(
        **{k: v for k, v in dsn.items() if k != "cursor_factory"}, autocommit=False
    ) as blocker:
        blocker.execute(f"LOCK TABLE {UpgradeLog._meta.db_table} IN EXCLUSIVE MODE")
        started = time.monotonic()
        first = client.post("/api/plugins/upgrades", body, content_type="application/json")
        waited = time.monotonic() - started
        assert first.status_code == 503, first.content
        assert first.json()["ok"] is False and "same Idempotency-Key" in first.json()["error"]
        assert 0.5 <= waited < 5
        blocker.rollback()  # the write goes through now
    deadline = time.monotonic() + 10
    while not UpgradeLog.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    replay = client.post("/api/plugins/upgrades", body, content_type="application/json")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert UpgradeLog.objects.count() == 1
    assert replay.json()["upgrade_log"]["id"] == str(UpgradeLog.objects.get().pk)


def test_a_prepared_statement_the_server_forgot_is_run_plain_and_the_connection_renewed():
    """DISCARD ALL (or a connection pooler) drops the server's prepared statements: the report is
    still written, once, and the next statement runs on a new connection, prepared again."""
    RolloutFactory(plugin_name="woocommerce", version="4.0.0", rollout_percentage=100)
    first = item(uuid.uuid4(), "p1")
    report_writer.write_statement([first])
    assert first[2].result(timeout=0) is True
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cur.fetchone()[0] == 1
        cur.execute("DISCARD ALL")
    backend = connection.connection.info.backend_pid

    second = item(uuid.uuid4(), "p2")
    report_writer.write_statement([second])
    assert second[2].result(timeout=0) is True
    third = item(uuid.uuid4(), "p3")
    report_writer.write_statement([third])
    assert third[2].result(timeout=0) is True

    assert connection.connection.info.backend_pid != backend
    assert UpgradeLog.objects.count() == 3
    assert verify_aggregates() == []


def test_reports_go_on_after_the_writers_connection_is_killed():
    """The database drops the writer's connection (a restart, a failover, an admin's
    pg_terminate_backend): the next report is still written, on a new connection."""
    RolloutFactory(plugin_name="woocommerce", version="4.0.0", rollout_percentage=100)
    others = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    with connection.cursor() as cur:
        cur.execute(others)
        before = {pid for (pid,) in cur.fetchall()}
        assert services.store_report(report(uuid.uuid4())) is not None  # starts the writer
        cur.execute(others)
        writer = {pid for (pid,) in cur.fetchall()} - before
        assert len(writer) == 1
        cur.execute("SELECT pg_terminate_backend(%s)", [writer.pop()])
        assert cur.fetchone()[0] is True

    for _ in range(3):
        assert services.store_report(report(uuid.uuid4())) is not None
    assert UpgradeLog.objects.count() == 4
    assert verify_aggregates() == []
