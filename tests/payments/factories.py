"""Payment health reports and synthetic fleets of merchants for the canary tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import factory
import numpy as np
from django.utils import timezone

from payments.models import PaymentHealthReport
from rollouts import cohort
from rollouts import services as rollout_services
from rollouts.models import Rollout


class PaymentHealthReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentHealthReport

    merchant_id = factory.LazyFunction(uuid.uuid4)
    plugin_name = "woocommerce"
    installed_version = "3.9.0"
    hour = datetime(2026, 11, 28, 10, tzinfo=__import__("datetime").UTC)
    attempted = 100
    succeeded = 98
    failed = 2
    failed_by_reason = factory.LazyAttribute(lambda r: {"declined": r.failed} if r.failed else {})
    latency_count = factory.SelfAttribute("attempted")
    latency_p50_ms = 420.0
    latency_p95_ms = 900.0


def merchant_ids(
    plugin_name: str, version: str, percentage: float, n: int, *, selected: bool, seed: int
) -> list:
    """``n`` merchant ids the rollout's bucketing selects (or leaves out), reproducibly."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < n:
        merchant = uuid.UUID(bytes=rng.bytes(16), version=4)
        bucket = cohort.bucket_for(plugin_name, version, merchant)
        if (bucket < percentage * 100) == selected:
            found.append(merchant)
    return found


@dataclass
class Side:
    """How one side of the fleet behaves: success rate and p95 latency per merchant."""

    merchants: int
    success_rate: float
    p95_ms: float = 900.0
    rate_jitter: float = 0.004  # merchants differ a little from each other
    p95_jitter: float = 0.15  # log-normal spread of per-merchant p95s
    version: str = "3.9.0"
    ids: list = field(default_factory=list)


def build_fleet(
    *,
    plugin_name: str,
    version: str,
    percentage: float,
    canary: Side,
    baseline: Side,
    end: datetime,
    hours: int = 24,
    payments_per_hour: int = 20,
    seed: int = 7,
) -> dict[str, list]:
    """Hourly reports for a canary (selected, on ``version``) and a baseline fleet, bulk-inserted.

    Per merchant: a success probability drawn around the side's rate, then binomial counts per
    hour; p95s log-normal around the side's p95. Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    canary.version = version
    canary.ids = merchant_ids(
        plugin_name, version, percentage, canary.merchants, selected=True, seed=seed + 10_007
    )
    baseline.ids = [uuid.UUID(bytes=rng.bytes(16), version=4) for _ in range(baseline.merchants)]
    rows = []
    for side in (canary, baseline):
        for merchant in side.ids:
            rate = float(np.clip(rng.normal(side.success_rate, side.rate_jitter), 0, 1))
            merchant_p95 = float(side.p95_ms * rng.lognormal(0, side.p95_jitter))
            for h in range(1, hours + 1):
                attempted = int(rng.poisson(payments_per_hour)) + 1
                succeeded = int(rng.binomial(attempted, rate))
                failed = attempted - succeeded
                declined = int(rng.binomial(failed, 0.7)) if failed else 0
                rows.append(
                    PaymentHealthReport(
                        merchant_id=merchant,
                        plugin_name=plugin_name,
                        installed_version=side.version,
                        hour=end - timedelta(hours=h),
                        attempted=attempted,
                        succeeded=succeeded,
                        failed=failed,
                        failed_by_reason={
                            k: v
                            for k, v in (("declined", declined), ("gateway_error", failed - declined))
                            if v
                        },
                        latency_count=attempted,
                        latency_p50_ms=merchant_p95 * 0.45,
                        latency_p95_ms=merchant_p95 * float(rng.lognormal(0, 0.05)),
                    )
                )
    PaymentHealthReport.objects.bulk_create(rows, batch_size=2000)
    return {"canary": canary.ids, "baseline": baseline.ids}


def failing_rollout() -> Rollout:
    """woocommerce 4.0.0 at 50 %, started 30 h ago the way the API starts one (the detail page
    reads its maintained aggregates), with a day of reports: 30 canary merchants at 93 %
    success against 60 baseline merchants at 98 %, a canary verdict of "fail"."""
    now = timezone.now()
    rollout = rollout_services.create_rollout(
        actor="user:setup", plugin_name="woocommerce", version="4.0.0", rollout_percentage=Decimal(50)
    )
    Rollout.objects.filter(pk=rollout.pk).update(created_at=now - timedelta(hours=30))
    rollout.refresh_from_db()
    build_fleet(
        plugin_name="woocommerce",
        version="4.0.0",
        percentage=50,
        canary=Side(30, 0.93),
        baseline=Side(60, 0.98),
        end=now.replace(minute=0, second=0, microsecond=0),
    )
    return rollout
