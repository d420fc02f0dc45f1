"""Canary versus baseline on synthetic fleets, and Sira pausing only on a significant regression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from molam_upgrades.models import AuditEntry
from payments import analysis, services
from payments.models import CanaryAnalysis, PaymentHealthReport
from rollbacks.models import RollbackHistory
from rollouts.models import Rollout
from tests.factories import RolloutFactory
from tests.merchants.factories import MerchantFactory

from .factories import PaymentHealthReportFactory, Side, build_fleet

NOW = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
END = NOW.replace(minute=0)

pytestmark = pytest.mark.django_db


@pytest.fixture
def rollout():
    return RolloutFactory(
        plugin_name="woocommerce",
        version="4.0.0",
        rollout_percentage=Decimal("50"),
        created_at=NOW - timedelta(hours=30),
    )


def fleet(rollout, canary: Side, baseline: Side, **kwargs):
    return build_fleet(
        plugin_name=rollout.plugin_name,
        version=rollout.version,
        percentage=float(rollout.rollout_percentage),
        canary=canary,
        baseline=baseline,
        end=END,
        **kwargs,
    )


def test_a_success_rate_drop_from_98_to_93_percent_fails_and_sira_pauses_with_the_figures(rollout):
    fleet(rollout, Side(30, 0.93), Side(60, 0.98))

    paused = services.check_canaries(now=NOW)

    assert [p.rollout_id for p in paused] == [rollout.pk]
    rollout.refresh_from_db()
    assert rollout.status == "paused"
    result = CanaryAnalysis.objects.get(rollout_id=rollout.pk)
    figures = result.figures["success_rate"]
    assert result.verdict == "fail" and result.success_verdict == "fail"
    assert figures["canary_merchants"] == 30 and figures["baseline_merchants"] == 60
    assert 0.92 < figures["canary_rate"] < 0.94 and 0.975 < figures["baseline_rate"] < 0.985
    assert figures["z"] > 10 and figures["p_value"] < 1e-6
    # The pause reason carries the test's figures.
    assert "Sira canary check" in rollout.paused_reason
    assert f"{figures['canary_rate']:.2%}" in rollout.paused_reason
    assert f"{figures['baseline_rate']:.2%}" in rollout.paused_reason
    assert "z = " in rollout.paused_reason and "30 merchants" in rollout.paused_reason
    entry = AuditEntry.objects.get(action="rollout.auto_paused", object_id=str(rollout.pk))
    assert entry.actor == "sira" and entry.after["reason"] == rollout.paused_reason
    assert entry.after["check"] == "payment_canary" and entry.after["verdict"] == "fail"
    # Recorded like every Sira pause: one Sira row in the rollback history, with the reason.
    sira_rows = RollbackHistory.objects.filter(sira_triggered=True, rollout_id=rollout.pk)
    assert [r.rollback_reason for r in sira_rows] == [rollout.paused_reason]


def test_noise_only_passes_and_nothing_is_paused(rollout):
    fleet(rollout, Side(30, 0.98), Side(60, 0.98), seed=11)

    assert services.check_canaries(now=NOW) == []

    rollout.refresh_from_db()
    assert rollout.status == "active"
    result = CanaryAnalysis.objects.get(rollout_id=rollout.pk)
    assert result.verdict == "pass", result.summary
    assert result.figures["success_rate"]["p_value"] > 0.01
    assert result.figures["latency"]["verdict"] == "pass"


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_noise_only_passes_for_other_fleets_too(rollout, seed):
    fleet(rollout, Side(25, 0.97, rate_jitter=0.01), Side(80, 0.97, rate_jitter=0.01), seed=seed)
    assert analysis.compare(rollout, now=NOW).verdict == "pass"


def test_too_few_canary_merchants_is_inconclusive_and_never_pauses(rollout):
    fleet(rollout, Side(4, 0.80, p95_ms=3000), Side(60, 0.98))

    assert services.check_canaries(now=NOW) == []

    rollout.refresh_from_db()
    assert rollout.status == "active"
    result = CanaryAnalysis.objects.get(rollout_id=rollout.pk)
    assert result.verdict == "inconclusive"
    assert "not enough data yet: 4 canary" in result.summary


def test_a_latency_regression_fails_on_mann_whitney_and_pauses(rollout):
    fleet(rollout, Side(20, 0.98, p95_ms=1400), Side(60, 0.98, p95_ms=900))

    paused = services.check_canaries(now=NOW)

    assert [p.rollout_id for p in paused] == [rollout.pk]
    result = CanaryAnalysis.objects.get(rollout_id=rollout.pk)
    assert result.latency_verdict == "fail" and result.success_verdict == "pass"
    latency = result.figures["latency"]
    assert latency["canary_merchants"] == 20 and latency["baseline_merchants"] == 60
    assert latency["p_value"] < 0.001 and latency["ratio"] > 1.3
    rollout.refresh_from_db()
    assert "Mann-Whitney U" in rollout.paused_reason and "ms on the canary" in rollout.paused_reason


def test_latency_within_the_margin_passes(rollout):
    fleet(rollout, Side(20, 0.98, p95_ms=930), Side(60, 0.98, p95_ms=900), seed=5)
    result = analysis.compare(rollout, now=NOW)
    assert result.latency.verdict == "pass"


def test_a_latency_regression_with_too_few_merchants_is_inconclusive(rollout):
    fleet(rollout, Side(5, 0.98, p95_ms=4000), Side(60, 0.98, p95_ms=900))
    assert services.check_canaries(now=NOW) == []
    assert CanaryAnalysis.objects.get(rollout_id=rollout.pk).latency_verdict == "inconclusive"


def test_the_margin_is_configurable(rollout, settings):
    fleet(rollout, Side(30, 0.965), Side(60, 0.98), seed=3)
    settings.PAYMENT_CANARY_SUCCESS_MARGIN = 0.03
    assert analysis.compare(rollout, now=NOW).success.verdict == "pass"
    settings.PAYMENT_CANARY_SUCCESS_MARGIN = 0.0
    assert analysis.compare(rollout, now=NOW).success.verdict == "fail"


def test_a_second_run_pauses_nothing_new_and_paused_rollouts_are_not_judged(rollout):
    fleet(rollout, Side(30, 0.93), Side(60, 0.98))
    assert len(services.check_canaries(now=NOW)) == 1
    assert services.check_canaries(now=NOW) == []
    assert AuditEntry.objects.filter(action="rollout.auto_paused").count() == 1


def test_the_baseline_is_read_over_the_canary_hours_only(rollout):
    """Baseline hours with no canary traffic (e.g. before anyone upgraded) do not count."""
    ids = fleet(rollout, Side(12, 0.98), Side(12, 0.98), hours=6)
    # A terrible night on the old version, 10 hours ago, when no canary merchant reported.
    for merchant in ids["baseline"]:
        PaymentHealthReportFactory(
            merchant_id=merchant, hour=END - timedelta(hours=10), attempted=100, succeeded=10, failed=90
        )
    comparison = analysis.compare(rollout, now=NOW)
    assert comparison.hours == 6
    assert comparison.success.baseline_rate > 0.95


def test_unselected_merchants_on_the_new_version_and_newer_versions_are_left_out(rollout):
    ids = fleet(rollout, Side(12, 0.98), Side(12, 0.98), hours=3)
    outsider = next(m.id for m in MerchantFactory.build_batch(200) if not _selected(rollout, m.id))
    for version in ("4.0.0", "4.1.0"):
        PaymentHealthReportFactory(
            merchant_id=outsider if version == "4.0.0" else ids["baseline"][0],
            installed_version=version,
            hour=END - timedelta(hours=1),
            attempted=1000,
            succeeded=0,
            failed=1000,
        )
    comparison = analysis.compare(rollout, now=NOW)
    assert comparison.excluded_merchants == 2
    assert {f.merchant_id for f in comparison.canary} == {str(m) for m in ids["canary"]}
    assert comparison.success.canary_rate > 0.9


def test_database_sums_agree_with_a_python_recount(rollout):
    ids = fleet(rollout, Side(15, 0.95), Side(25, 0.98), hours=8, seed=21)
    comparison = analysis.compare(rollout, now=NOW)
    start, end = analysis.window_for(rollout, NOW)
    rows = list(PaymentHealthReport.objects.filter(hour__gte=start, hour__lt=end))
    for members in (comparison.canary, comparison.baseline):
        for figures in members:
            mine = [r for r in rows if str(r.merchant_id) == figures.merchant_id]
            assert figures.attempted == sum(r.attempted for r in mine)
            assert figures.succeeded == sum(r.succeeded for r in mine)
            weighted = sum(r.latency_p95_ms * r.latency_count for r in mine) / sum(
                r.latency_count for r in mine
            )
            assert figures.p95_ms == pytest.approx(weighted)
    assert len(comparison.canary) == len(ids["canary"]) and len(comparison.baseline) == len(ids["baseline"])


def test_rollouts_without_sira_monitoring_are_not_judged(rollout):
    Rollout.objects.filter(pk=rollout.pk).update(sira_monitoring=False)
    fleet(rollout, Side(30, 0.90), Side(60, 0.98))
    assert services.check_canaries(now=NOW) == []
    assert not CanaryAnalysis.objects.exists()


def _selected(rollout, merchant_id) -> bool:
    from rollouts import cohort

    return cohort.selected(
        cohort.bucket_for(rollout.plugin_name, rollout.version, merchant_id), rollout.rollout_percentage
    )


def test_the_sira_auto_check_runs_the_canary_rule_and_marks_the_pause_as_sira(rollout, cast):
    from molam_upgrades.models import Alert

    fleet(rollout, Side(30, 0.93), Side(60, 0.98))
    with time_machine.travel(NOW, tick=False):
        response = cast.sira.post("rollouts/auto-check")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["paused_count"] == 1
    [paused] = body["paused_rollouts"]
    assert paused["rollout_id"] == rollout.pk and paused["check"] == "payment_canary"
    assert "payment success rate" in paused["reason"]
    rollout.refresh_from_db()
    assert rollout.status == "paused" and rollout.auto_paused is True and rollout.paused_by == "client:sira"
    assert Alert.objects.filter(kind="rollout_canary_failed").count() == 1
    # The next run pauses nothing new.
    with time_machine.travel(NOW, tick=False):
        assert cast.sira.post("rollouts/auto-check").json()["paused_count"] == 0


def test_the_auto_check_does_not_pause_on_noise(rollout):
    from rollouts import services as rollout_services

    fleet(rollout, Side(30, 0.98), Side(60, 0.98), seed=11)
    with time_machine.travel(NOW, tick=False):
        assert rollout_services.auto_pause_failing_rollouts(source="command") == []
    rollout.refresh_from_db()
    assert rollout.status == "active"


@pytest.mark.django_db
def test_a_version_without_reports_is_judged_the_same_without_querying(django_assert_max_num_queries):
    """Sira's batch path: a rollout whose version has no payment report in the window gets the
    same "no data" judgement as the full comparison, and 30 such rollouts cost a fixed handful
    of statements."""
    rollouts = [
        RolloutFactory(plugin_name=f"quiet-{i}", version="2.0.0", created_at=NOW - timedelta(hours=5))
        for i in range(30)
    ]
    full = analysis.compare(rollouts[0], now=NOW)
    quick = analysis.compare(rollouts[0], now=NOW, has_reports=False)
    assert (quick.verdict, quick.summary, quick.figures()) == (full.verdict, full.summary, full.figures())
    assert quick.window_start == full.window_start is not None
    with django_assert_max_num_queries(3):
        results = services.analyse_rollouts(rollouts, now=NOW)
    assert [r.verdict for r in results] == [full.verdict] * 30
    assert CanaryAnalysis.objects.filter(rollout_id__in=[r.pk for r in rollouts]).count() == 30
