"""Stage gates: is the rollout healthy enough, long enough, on a large enough sample, to widen?

The counts come from the rollout's own Sira function (``rollouts.metrics.rollout_error_rates``)
and its error-rate rule (``rollouts.metrics.error_rate``): a gate sees exactly the merchants and
failures Sira judges, so a change to how Sira counts changes the gates with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from molam_upgrades.sira_rules import wilson_lower_bound
from rollouts.metrics import error_rate, rollout_error_rates
from rollouts.models import Rollout

from .choices import GateKind
from .models import PlanStage, RolloutPlan


@dataclass(frozen=True)
class Health:
    """What Sira counts for a rollout: the sample and the failures in it."""

    sample: int
    failures: int

    @property
    def error_rate(self) -> Decimal:
        return error_rate(self.sample, self.failures)


def health_of(rollouts) -> dict[int, Health]:
    """Sira's counts for each rollout of a queryset or list of ids, in one statement."""
    queryset = rollouts if hasattr(rollouts, "model") else Rollout.objects.filter(pk__in=list(rollouts))
    rates = rollout_error_rates(queryset.order_by().values_list("pk", flat=True))
    return {pk: Health(rate.merchants, rate.merchants_failed) for pk, rate in rates.items()}


def wilson_upper(failures: int, n: int) -> float:
    """Upper end of the Wilson 95 % interval of a failure proportion (1.0 with no sample).

    The interval is symmetric in failures and successes, so this is one minus Sira's lower
    bound of the success proportion: one Wilson formula (``molam_upgrades.sira_rules``).
    """
    if n <= 0:
        return 1.0
    return 1.0 - wilson_lower_bound(n - failures, n)


@dataclass
class Verdict:
    """Whether the current stage may hand over to the next one, and what it waits for."""

    ready: bool
    waiting: list[str] = field(default_factory=list)
    soak_left: timedelta = timedelta(0)


def judge(plan: RolloutPlan, stage: PlanStage, rollout: Rollout, health: Health, now: datetime) -> Verdict:
    """Soak, sample and gate of ``stage`` (the window and the rollout's state are checked apart)."""
    waiting: list[str] = []
    soak_left = max(timedelta(0), plan.soak_started_at + stage.min_soak - now)
    if soak_left > timedelta(0):
        waiting.append(f"soak: {_duration(soak_left)} left of {_duration(stage.min_soak)}")
    if health.sample < stage.min_merchants:
        waiting.append(f"sample: {health.sample} of {stage.min_merchants} merchants reporting")
    maximum = stage.max_error_rate if stage.max_error_rate is not None else rollout.error_threshold
    if stage.gate == GateKind.WILSON:
        upper = wilson_upper(health.failures, health.sample)
        if Decimal(str(upper)) > maximum:
            waiting.append(
                f"gate: Wilson upper bound {upper * 100:.2f} % above {maximum * 100:.2f} % "
                f"({health.failures}/{health.sample} failed)"
            )
    elif health.error_rate > maximum:
        waiting.append(
            f"gate: error rate {health.error_rate * 100:.2f} % above {maximum * 100:.2f} % "
            f"({health.failures}/{health.sample} failed)"
        )
    return Verdict(ready=not waiting, waiting=waiting, soak_left=soak_left)


def _duration(delta: timedelta) -> str:
    minutes = math.ceil(delta.total_seconds() / 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes and not days:
        parts.append(f"{minutes} min")
    return " ".join(parts) or "0 min"
