"""The canary panel (context + partial + page) and the verdict in /metrics."""

from __future__ import annotations

import pytest
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from molam_upgrades import registry
from payments import services
from payments.views import canary_context
from tests.dashboards.conftest import login
from tests.factories import UserFactory

from . import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def failing_rollout():
    return factories.failing_rollout()


def test_the_context_function_puts_canary_and_baseline_side_by_side(failing_rollout):
    context = canary_context(failing_rollout)["canary"]
    assert context["verdict"] == "fail"
    rows = {label: (canary, baseline) for label, canary, baseline, _ in context["rows"]}
    assert rows["Merchants"] == (30, 60)
    canary_rate, baseline_rate = rows["Success rate"]
    assert canary_rate.startswith("9") and canary_rate.endswith("%") and baseline_rate.startswith("9")


def test_the_canary_page_shows_the_verdict_to_a_viewer(failing_rollout):
    viewer = login(UserFactory(roles=["ops_viewer"]))
    response = viewer.get(f"/ops/rollouts/{failing_rollout.pk}/canary")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-verdict="fail"' in html and "Payments: canary vs baseline" in html
    assert "two-proportion z-test" in html and "Mann-Whitney U" in html
    assert "<script" not in html.split("<main", 1)[-1] and " style=" not in html and "onclick" not in html


def test_the_canary_page_needs_an_ops_role(failing_rollout, client):
    outsider = login(UserFactory(roles=[]))
    assert outsider.get(f"/ops/rollouts/{failing_rollout.pk}/canary").status_code == 403
    assert client.get(f"/ops/rollouts/{failing_rollout.pk}/canary").status_code == 302


def test_the_registered_collector_exposes_the_verdict(failing_rollout):
    services.check_canaries()
    [source] = [s for s in registry.metrics_sources() if s.name == "payments"]
    prom = CollectorRegistry(auto_describe=False)

    class Collector:
        def collect(self):
            return source.collect(source.read(timezone.now()))

    prom.register(Collector())
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(prom).decode())
        for sample in family.samples
    }
    labels = {"plugin": "woocommerce", "rollout_id": str(failing_rollout.pk), "version": "4.0.0"}

    def value(name, **extra):
        return samples[(name, tuple(sorted({**labels, **extra}.items())))]

    assert value("molam_rollout_canary_verdict", verdict="fail") == 1.0
    assert value("molam_rollout_canary_verdict", verdict="pass") == 0.0
    assert 0.92 < value("molam_rollout_payment_success_ratio", group="canary") < 0.94
    assert value("molam_rollout_canary_p_value", test="success_rate") < 0.0001


def test_the_api_returns_the_stored_verdict(cast, failing_rollout):
    from tests.conftest import assert_error

    assert_error(cast.viewer.get(f"canary-analyses/{failing_rollout.pk}"), 404)
    services.check_canaries()
    body = cast.sira.get(f"canary-analyses/{failing_rollout.pk}").json()
    assert body["canary"]["verdict"] == "fail"
    assert body["canary"]["figures"]["success_rate"]["canary_merchants"] == 30
    listed = cast.viewer.get("canary-analyses", {"verdict": "fail"}).json()
    assert listed["total"] == 1
    assert_error(cast.plugin_a.get("canary-analyses"), 403)


def test_the_rollout_detail_page_shows_canary_and_baseline_side_by_side(failing_rollout):
    viewer = login(UserFactory(roles=["ops_viewer"]))
    html = viewer.get(f"/ops/rollouts/{failing_rollout.pk}").content.decode()
    assert 'id="canary"' in html and 'data-verdict="fail"' in html
    assert 'data-group="canary"' in html and 'data-group="baseline"' in html


def test_metrics_endpoint_exposes_the_canary_verdict(client, failing_rollout, settings):
    from tests.monitoring.support import parse_scrape, sample

    settings.METRICS_TOKEN = ""
    settings.METRICS_CACHE_SECONDS = 0
    services.check_canaries()
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = parse_scrape(response.content.decode())
    labels = {"rollout_id": failing_rollout.pk, "plugin": "woocommerce", "version": "4.0.0"}
    assert sample(samples, "molam_rollout_canary_verdict", verdict="fail", **labels) == 1
    assert sample(samples, "molam_rollout_canary_verdict", verdict="inconclusive", **labels) == 0
