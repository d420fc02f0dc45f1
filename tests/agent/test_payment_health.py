"""The agent's hourly payment figures: read from WooCommerce's order tables, posted to the real
control plane, stored once per hour."""

from __future__ import annotations

import datetime as dt
import tomllib
import uuid
from pathlib import Path

import pytest

from molam_agent import payment_health
from molam_agent.db import connect
from payments.models import PaymentHealthReport

from .conftest import MERCHANT, Host, build_plugin, create_database
from .test_live_control_plane import LiveControlPlane, _token

DOCS = Path(__file__).resolve().parents[2] / "docs" / "agent.md"


def documented_woocommerce_query() -> str:
    """The [payment_health] query docs/agent.md gives for WooCommerce: the test runs the docs."""
    text = DOCS.read_text()
    section = text[text.index("## Payment health") :]
    block = section[
        section.index("```toml\n") + len("```toml\n") : section.index("```\n", section.index("```toml"))
    ]
    return tomllib.loads(block)["payment_health"]["query"]


WOOCOMMERCE_QUERY = documented_woocommerce_query()

WOO_TABLES = """
CREATE TABLE wp_wc_orders (
  id BIGINT UNSIGNED PRIMARY KEY, status VARCHAR(20), type VARCHAR(20), payment_method VARCHAR(100),
  date_created_gmt DATETIME, KEY date_created (date_created_gmt)
) ENGINE=InnoDB;
CREATE TABLE wp_wc_orders_meta (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, order_id BIGINT UNSIGNED, meta_key VARCHAR(255), meta_value TEXT,
  KEY order_id (order_id)
) ENGINE=InnoDB;
"""


def seed_orders(
    db, hour: dt.datetime, outcomes: list[tuple[str, str | None, int | None]], first_id: int
) -> None:
    """Orders in one hour: (status, failure class meta, latency meta)."""
    for i, (status, failure, latency) in enumerate(outcomes):
        order_id = first_id + i
        created = (hour + dt.timedelta(minutes=i % 60)).strftime("%Y-%m-%d %H:%M:%S")
        db.execute(
            "INSERT INTO wp_wc_orders (id, status, type, payment_method, date_created_gmt) VALUES (%s, %s, %s, %s, %s)",
            (order_id, status, "shop_order", "molam", created),
        )
        if failure:
            db.execute(
                "INSERT INTO wp_wc_orders_meta (order_id, meta_key, meta_value) VALUES (%s, %s, %s)",
                (order_id, "_molam_failure_class", failure),
            )
        if latency is not None:
            db.execute(
                "INSERT INTO wp_wc_orders_meta (order_id, meta_key, meta_value) VALUES (%s, %s, %s)",
                (order_id, "_molam_payment_latency_ms", str(latency)),
            )
    db.commit()


@pytest.mark.django_db(transaction=True)
def test_the_agent_reports_woocommerce_hours_once_each(live_server, tmp_path):
    files = tmp_path / "www"
    files.mkdir()
    cp = LiveControlPlane(live_server, files)
    url, cleanup = create_database("mysql", tmp_path, rows=10)
    try:
        plugins = tmp_path / "wp-content" / "plugins"
        plugins.mkdir(parents=True)
        host = Host(
            tmp=tmp_path,
            cp=cp,
            plugin_dir=plugins / "molam-form",
            state_dir=tmp_path / "state",
            releases_dir=files,
            db_url=url,
        )
        build_plugin(host.plugin_dir, "3.9.0")
        host.write_config(
            control_plane={"token": _token("merchant-a-woocommerce", "plugin", MERCHANT)},
            payment_health={"query": WOOCOMMERCE_QUERY, "hours": 3},
        )
        now = dt.datetime.now(dt.UTC)
        this_hour = now.replace(minute=0, second=0, microsecond=0, tzinfo=None)
        two_hours_ago = this_hour - dt.timedelta(hours=2)
        with connect(url) as db:
            db._run_script(WOO_TABLES)
            # 2 hours ago: 18 paid (latencies 100..1800 ms), 1 declined, 1 gateway error, 1 pending.
            outcomes = [("wc-completed", None, 100 * (i + 1)) for i in range(18)]
            outcomes += [
                ("wc-failed", None, 900),
                ("wc-failed", "gateway_error", 2500),
                ("wc-pending", None, None),
            ]
            seed_orders(db, two_hours_ago, outcomes, first_id=1)
            # The current hour is not complete: not sent.
            seed_orders(db, this_hour, [("wc-failed", "timeout", 9000)], first_id=100)

        code, out = host.run("report-payments")

        assert code == 0, out
        assert out["status"] == "success" and out["hours"] == [two_hours_ago.strftime("%Y-%m-%dT%H:00:00Z")]
        report = PaymentHealthReport.objects.get()
        assert report.merchant_id == uuid.UUID(MERCHANT) and report.installed_version == "3.9.0"
        assert report.hour == two_hours_ago.replace(tzinfo=dt.UTC)
        assert (report.attempted, report.succeeded, report.failed) == (20, 18, 2)
        assert report.failed_by_reason == {"declined": 1, "gateway_error": 1}
        latencies = sorted([100 * (i + 1) for i in range(18)] + [900, 2500])
        assert report.latency_count == 20
        assert report.latency_p50_ms == latencies[9] and report.latency_p95_ms == latencies[18]

        # A second run sends the same hour with the same figures: nothing new is stored.
        code, out = host.run("report-payments")
        assert code == 0 and PaymentHealthReport.objects.count() == 1
    finally:
        cp.stop()
        cleanup()


def test_without_a_query_the_verb_skips(host):
    host.write_config()
    code, out = host.run("report-payments")
    assert code == 0 and out["status"] == "skipped" and "payment_health" in out["reason"]


def test_a_query_without_bounds_is_refused():
    with pytest.raises(payment_health.PaymentQueryError, match=":since and :until"):
        payment_health.bind("SELECT created_at, outcome, latency_ms FROM orders", "?", "a", "b")


def test_placeholders_follow_the_order_of_appearance():
    sql, params = payment_health.bind("… WHERE t < :until AND t >= :since AND u < :until", "%s", "S", "U")
    assert sql == "… WHERE t < %s AND t >= %s AND u < %s" and params == ["U", "S", "U"]


def test_aggregation_on_sqlite_counts_classes_and_percentiles(tmp_path):
    with connect(f"sqlite://{tmp_path / 'shop.db'}") as db:
        db.execute("CREATE TABLE pay (created_at TEXT, outcome TEXT, latency_ms REAL)")
        rows = [("2026-11-29 07:05:00", "succeeded", 200.0)] * 8 + [
            ("2026-11-29 07:59:59", "fraud", None),
            ("2026-11-29 07:30:00", "Mystery", 50.0),
            ("2026-11-29 07:31:00", None, 10.0),
            ("2026-11-29 08:00:00", "succeeded", 300.0),
        ]
        for row in rows:
            db.execute("INSERT INTO pay VALUES (?, ?, ?)", row)

        since = dt.datetime(2026, 11, 29, 7, tzinfo=dt.UTC)
        hours = payment_health.read_hours(
            db,
            "SELECT * FROM pay WHERE created_at >= :since AND created_at < :until",
            since,
            since + dt.timedelta(hours=1),
        )
    assert hours == [
        {
            "hour": "2026-11-29T07:00:00Z",
            "attempted": 10,
            "succeeded": 8,
            "failed_by_reason": {"fraud": 1, "other": 1},
            "latency_ms": {"count": 9, "p50": 200.0, "p95": 200.0},
        }
    ]


def test_nearest_rank_percentiles():
    values = list(range(1, 101))
    assert payment_health.nearest_rank(values, 0.95) == 95
    assert payment_health.nearest_rank(values, 0.5) == 50
    assert payment_health.nearest_rank([7.0], 0.95) == 7.0
    assert payment_health.nearest_rank([], 0.5) is None
