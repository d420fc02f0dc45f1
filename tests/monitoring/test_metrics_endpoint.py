"""/metrics: every series the alert rules and dashboards need, cheap and protected."""

from __future__ import annotations

import gzip
import socket
import subprocess
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from molam_upgrades import prometheus
from tests.factories import RollbackFactory, RolloutFactory, UpgradeLogFactory

from .support import parse_scrape, parse_scrape_openmetrics, sample

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> str:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.content.decode()


def test_rollback_counters_by_plugin_and_trigger(client, fleet):
    samples = parse_scrape(scrape(client))
    assert sample(samples, "molam_rollbacks_total", plugin="woocommerce", trigger="automatic") == 3
    assert sample(samples, "molam_rollbacks_total", plugin="woocommerce", trigger="manual") == 1
    assert sample(samples, "molam_rollbacks_total", plugin="prestashop", trigger="operator_forced") == 1
    assert sample(samples, "molam_rollbacks_failed_total", plugin="woocommerce", trigger="automatic") == 1
    assert sample(samples, "molam_rollbacks_failed_total", plugin="woocommerce", trigger="manual") == 0
    # The rollback still waiting for the agent is in progress, not in the totals.
    assert (
        sample(samples, "molam_rollbacks_in_progress", plugin="woocommerce", trigger="operator_forced") == 1
    )


def test_sira_pause_records_are_not_counted_as_rollbacks(client, fleet):
    samples = parse_scrape(scrape(client))
    total = sum(v for (name, _), v in samples.items() if name == "molam_rollbacks_total")
    assert total == 5


def test_windows_match_the_stats_api(client, fleet, cast):
    samples = parse_scrape(scrape(client))
    stats = cast.viewer.get("rollback/stats").json()
    assert sample(samples, "molam_rollbacks_last_7d", plugin="woocommerce") == 3
    assert sample(samples, "molam_rollbacks_failed_last_7d", plugin="woocommerce") == 1
    assert sample(samples, "molam_rollbacks_last_24h", plugin="woocommerce") == 1
    assert sample(samples, "molam_rollbacks_last_24h", plugin="prestashop") == 1

    def total(name):
        return sum(v for (n, _), v in samples.items() if n == name)

    assert total("molam_rollbacks_last_24h") == stats["rollbacks_last_24h"]
    assert total("molam_rollbacks_failed_last_7d") == stats["failed_rollbacks_last_7d"]


def test_rollback_duration_histogram_in_seconds(client, fleet):
    samples = parse_scrape(scrape(client))

    def bucket(le):
        return sample(samples, "molam_rollback_duration_seconds_bucket", plugin="woocommerce", le=le)

    # Durations 0.8 s, 2.5 s, 45 s, 1.2 s.
    assert bucket("0.5") == 0
    assert bucket("1.0") == 1
    assert bucket("2.0") == 2
    assert bucket("3.0") == 3
    assert bucket("30.0") == 3
    assert bucket("60.0") == 4
    assert bucket("+Inf") == 4
    assert sample(samples, "molam_rollback_duration_seconds_count", plugin="woocommerce") == 4
    assert sample(samples, "molam_rollback_duration_seconds_sum", plugin="woocommerce") == pytest.approx(49.5)
    # A rollback without a reported duration is not observed.
    assert sample(samples, "molam_rollback_duration_seconds_count", plugin="prestashop") == 0


def test_open_rollouts_expose_percentage_error_rate_threshold_creation_and_status(client, fleet):
    samples = parse_scrape(scrape(client))
    woo = {"rollout_id": fleet.woo_rollout.pk, "plugin": "woocommerce", "version": "4.1.0"}
    presta = {"rollout_id": fleet.presta_rollout.pk, "plugin": "prestashop", "version": "2.0.0"}
    assert sample(samples, "molam_rollout_cohort_ratio", **woo) == pytest.approx(0.10)
    assert sample(samples, "molam_rollout_cohort_ratio", **presta) == pytest.approx(0.255)
    assert sample(samples, "molam_rollout_error_ratio", **woo) == pytest.approx(0.2)
    assert sample(samples, "molam_rollout_error_threshold_ratio", **woo) == pytest.approx(0.05)
    assert sample(samples, "molam_rollout_error_threshold_ratio", **presta) == pytest.approx(0.03)
    assert sample(samples, "molam_rollout_created_timestamp_seconds", **woo) == pytest.approx(
        fleet.woo_rollout.created_at.timestamp()
    )
    assert sample(samples, "molam_rollout_status", status="active", **woo) == 1
    assert sample(samples, "molam_rollout_status", status="paused", **woo) == 0
    assert sample(samples, "molam_rollout_status", status="paused", **presta) == 1
    assert sample(samples, "molam_rollout_auto_paused", **presta) == 1
    assert sample(samples, "molam_rollout_upgrades_total", **woo) == 10
    assert sample(samples, "molam_rollout_upgrade_errors_total", **woo) == 2
    assert sample(samples, "molam_rollout_merchants_upgraded", **woo) == 8
    assert sample(samples, "molam_rollout_min_sample_size", **woo) == 10
    assert sample(samples, "molam_rollout_info", strategy="random", sira_monitoring="true", **woo) == 1
    # Completed rollouts have no per-rollout series, only the count by status.
    assert not [k for k in samples if k[0] == "molam_rollout_cohort_ratio" and ("plugin", "shopify") in k[1]]
    assert sample(samples, "molam_rollouts", status="completed") == 1
    assert sample(samples, "molam_rollouts", status="rolled_back") == 0
    assert sample(samples, "molam_rollouts_paused_by_sira") == 1


def test_sira_runs_by_source_and_last_run(client, fleet):
    from rollouts.models import AutoCheckRun

    samples = parse_scrape(scrape(client))
    assert sample(samples, "molam_sira_checks_total", source="beat") == 2  # the running one is not counted
    assert sample(samples, "molam_sira_checks_total", source="http") == 1
    assert sample(samples, "molam_sira_rollouts_paused_total", source="beat") == 1
    last_beat = AutoCheckRun.objects.filter(source="beat", finished_at__isnull=False).latest("finished_at")
    assert sample(samples, "molam_sira_last_run_timestamp_seconds", source="beat") == pytest.approx(
        last_beat.finished_at.timestamp()
    )


def test_alerts_by_kind_and_status(client, fleet):
    from molam_upgrades.models import Alert

    samples = parse_scrape(scrape(client))
    assert sample(samples, "molam_alerts", kind="rollback_failed", status="sent") == 1
    assert sample(samples, "molam_alerts", kind="rollback_failed", status="failed") == 1
    assert sample(samples, "molam_alerts", kind="rollout_auto_paused", status="pending") == 1
    assert sample(samples, "molam_alerts", kind="rollout_auto_paused", status="failed") == 0
    assert sample(samples, "molam_alerts_sent_total", kind="rollback_failed") == 1
    assert sample(samples, "molam_alert_delivery_attempts_total", kind="rollback_failed") == 7
    pending = Alert.objects.get(kind="rollout_auto_paused")
    assert sample(samples, "molam_alert_oldest_pending_timestamp_seconds", kind="rollout_auto_paused") == (
        pytest.approx(pending.created_at.timestamp())
    )


def test_an_empty_database_scrapes_cleanly(client):
    samples = parse_scrape(scrape(client))
    assert sample(samples, "molam_metrics_collect_success") == 1
    assert sample(samples, "molam_rollouts", status="active") == 0
    assert sample(samples, "molam_rollouts_paused_by_sira") == 0


def test_a_scrape_costs_a_few_queries_whatever_the_table_sizes(client, fleet):
    with CaptureQueriesContext(connection) as small:
        scrape(client)
    for i in range(40):
        RollbackFactory(plugin_name=f"plugin-{i % 4}", success=i % 3 != 0)
        UpgradeLogFactory(plugin_name="woocommerce", to_version="4.1.0")
    RolloutFactory(plugin_name="bigcommerce")
    prometheus.cache.delete(prometheus.CACHE_KEY)
    with CaptureQueriesContext(connection) as large:
        scrape(client)
    # A fixed handful of aggregate reads (one per app collector, plus the window edges of the
    # rollback figures), the same whatever the history holds.
    assert len(large) == len(small) <= 12


def test_scrapes_within_the_cache_window_do_not_query(client, fleet):
    scrape(client)
    with CaptureQueriesContext(connection) as queries:
        text = scrape(client)
    assert len(queries) == 0
    assert "molam_rollbacks_total" in text


def test_without_the_cache_every_scrape_shows_the_current_values(client, fleet, settings):
    settings.METRICS_CACHE_SECONDS = 0
    labels = {"plugin": "woocommerce", "trigger": "automatic"}
    assert sample(parse_scrape(scrape(client)), "molam_rollbacks_total", **labels) == 3
    RollbackFactory(plugin_name="woocommerce", duration_ms=700)
    samples = parse_scrape(scrape(client))
    assert sample(samples, "molam_rollbacks_total", **labels) == 4
    assert sample(samples, "molam_rollback_duration_seconds_bucket", plugin="woocommerce", le="1.0") == 2


def test_both_formats_of_one_snapshot_carry_the_same_series(client, fleet):
    text = parse_scrape(scrape(client))
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    openmetrics = parse_scrape_openmetrics(response.content.decode())
    for key in [k for k in text if k[0].startswith(("molam_rollback", "molam_rollout_", "molam_alert"))]:
        assert openmetrics[key] == text[key], key


@contextmanager
def database_unreachable():
    """The real driver failing: Django's connection pointed at a port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    saved = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(closed_port)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved


@pytest.mark.django_db(transaction=True)
def test_a_database_failure_serves_the_last_values_and_says_so(client, fleet):
    first = parse_scrape(scrape(client))
    prometheus.cache.delete(prometheus.CACHE_KEY)
    with database_unreachable():
        samples = parse_scrape(scrape(client))
    assert sample(samples, "molam_metrics_collect_success") == 0
    key = ("molam_rollbacks_total", frozenset({("plugin", "woocommerce"), ("trigger", "automatic")}))
    assert samples[key] == first[key] == 3


@pytest.mark.django_db(transaction=True)
def test_with_the_cache_off_a_database_failure_still_serves_the_last_values(
    client, fleet, settings, monkeypatch
):
    settings.METRICS_CACHE_SECONDS = 0
    monkeypatch.setattr(prometheus, "_stale_written_at", None)  # as in a freshly started worker
    scrape(client)
    with database_unreachable():
        samples = parse_scrape(scrape(client))
    assert sample(samples, "molam_metrics_collect_success") == 0
    assert sample(samples, "molam_rollbacks_total", plugin="woocommerce", trigger="automatic") == 3


def test_token_is_required_when_configured(client, fleet, settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Basic s3cret"}):
        response = client.get("/metrics", **headers)
        assert response.status_code == 401
        body = response.json()
        assert body["ok"] is False and "token" in body["error"] and body["details"] == {}
        assert response["WWW-Authenticate"].startswith("Bearer")
    text = scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")
    assert "molam_rollbacks_total" in text


def test_metrics_are_open_when_no_token_is_set(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


def test_only_get_is_allowed(client):
    response = client.post("/metrics")
    assert response.status_code == 405 and response.json()["ok"] is False


def test_openmetrics_and_gzip_are_negotiated(client, fleet):
    response = client.get(
        "/metrics",
        HTTP_ACCEPT="application/openmetrics-text; version=1.0.0",
        HTTP_ACCEPT_ENCODING="gzip",
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response["Content-Encoding"] == "gzip"
    text = gzip.decompress(response.content).decode()
    assert text.rstrip().endswith("# EOF")
    assert "molam_rollbacks_total{" in text


def test_scrape_passes_promtool_lint(client, fleet, promtool):
    result = subprocess.run(
        [promtool, "check", "metrics"], input=scrape(client), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_build_info_names_the_version(client):
    samples = parse_scrape(scrape(client))
    ((name, labels),) = [key for key in samples if key[0] == "molam_build_info"]
    assert dict(labels)["version"] not in ("", "unknown")


def test_collector_uses_its_own_registry():
    from prometheus_client import REGISTRY as GLOBAL

    assert prometheus.REGISTRY is not GLOBAL
    assert not any(isinstance(c, prometheus.MolamCollector) for c in GLOBAL._collector_to_names)
