"""The statistical judge of a canary: two tests, a minimum sample, a margin. No Django here.

* Payment success rate — one-sided two-proportion z-test on payments (successes / attempts):
  H0 ``baseline − canary ≤ margin`` against H1 ``baseline − canary > margin``. With a zero
  margin it is the textbook pooled test; with a margin the standard error is the unpooled
  (Wald) one, because under H0 the two rates are not equal and cannot be pooled.
* Payment latency — one-sided Mann-Whitney U on per-merchant p95s: is a canary merchant's p95
  stochastically greater than a baseline merchant's p95 inflated by ``(1 + margin)``? Rank-based,
  so a few very slow shops neither hide nor fake a regression, and p95s (which are skewed and
  not normal) need no distribution assumption. Merchants, not hours, are the unit: a merchant's
  hours are not independent of each other.

A verdict is ``fail`` only when the canary is significantly worse *beyond the margin*; ``pass``
means no such evidence with enough data; ``inconclusive`` means not enough data to judge —
Sira pauses on ``fail`` only (as Argo/Kayenta do).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from scipy import stats as scipy_stats

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class Settings:
    """Thresholds of the judge (``PAYMENT_CANARY_*`` settings)."""

    alpha: float = 0.01
    success_margin: float = 0.01  # absolute: 0.01 = one percentage point of success rate
    latency_margin: float = 0.10  # relative: 0.10 = canary p95 more than 10 % slower
    min_merchants: int = 10  # in each group
    min_payments: int = 500  # attempted payments in each group


@dataclass(frozen=True)
class SuccessRateResult:
    verdict: str
    canary_merchants: int
    baseline_merchants: int
    canary_attempted: int
    canary_succeeded: int
    baseline_attempted: int
    baseline_succeeded: int
    canary_rate: float | None
    baseline_rate: float | None
    difference: float | None  # canary − baseline (negative: canary worse)
    margin: float
    z: float | None
    p_value: float | None
    alpha: float
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LatencyResult:
    verdict: str
    canary_merchants: int
    baseline_merchants: int
    canary_p95_median: float | None
    baseline_p95_median: float | None
    ratio: float | None  # canary median / baseline median
    margin: float
    u: float | None
    p_value: float | None
    rank_biserial: float | None  # effect size: +1 every canary p95 above every baseline p95
    alpha: float
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def success_rate_test(
    *,
    canary_succeeded: int,
    canary_attempted: int,
    baseline_succeeded: int,
    baseline_attempted: int,
    canary_merchants: int,
    baseline_merchants: int,
    settings: Settings,
) -> SuccessRateResult:
    """One-sided two-proportion z-test: is the canary's success rate worse by more than the margin?"""
    margin, alpha = settings.success_margin, settings.alpha
    base = dict(
        canary_merchants=canary_merchants,
        baseline_merchants=baseline_merchants,
        canary_attempted=canary_attempted,
        canary_succeeded=canary_succeeded,
        baseline_attempted=baseline_attempted,
        baseline_succeeded=baseline_succeeded,
        margin=margin,
        alpha=alpha,
    )
    pc = canary_succeeded / canary_attempted if canary_attempted else None
    pb = baseline_succeeded / baseline_attempted if baseline_attempted else None
    short = _too_few(
        canary_merchants, baseline_merchants, settings.min_merchants, "merchants reporting payments"
    ) or _too_few(canary_attempted, baseline_attempted, settings.min_payments, "payments attempted")
    if short:
        return SuccessRateResult(
            verdict=INCONCLUSIVE,
            canary_rate=pc,
            baseline_rate=pb,
            difference=None if pc is None or pb is None else pc - pb,
            z=None,
            p_value=None,
            reason=short,
            **base,
        )
    worse_by = pb - pc
    if margin == 0:
        pooled = (canary_succeeded + baseline_succeeded) / (canary_attempted + baseline_attempted)
        se = math.sqrt(pooled * (1 - pooled) * (1 / canary_attempted + 1 / baseline_attempted))
    else:
        se = math.sqrt(pc * (1 - pc) / canary_attempted + pb * (1 - pb) / baseline_attempted)
    if se == 0:
        # Both rates are exactly 0 or 1: no sampling noise, the difference speaks for itself.
        z = math.inf if worse_by > margin else -math.inf
        p_value = 0.0 if worse_by > margin else 1.0
    else:
        z = (worse_by - margin) / se
        p_value = float(scipy_stats.norm.sf(z))
    failed = p_value < alpha
    reason = (
        f"payment success rate {pc:.2%} on the canary vs {pb:.2%} on the baseline "
        f"({-worse_by * 100:+.2f} pp; worse than the {margin * 100:.2f} pp margin with "
        f"z = {_num(z)}, one-sided {_p(p_value)} < α = {alpha:g})"
        if failed
        else f"payment success rate {pc:.2%} on the canary vs {pb:.2%} on the baseline "
        f"({-worse_by * 100:+.2f} pp; not significantly worse than the {margin * 100:.2f} pp margin, "
        f"{_p(p_value)})"
    )
    return SuccessRateResult(
        verdict=FAIL if failed else PASS,
        canary_rate=pc,
        baseline_rate=pb,
        difference=pc - pb,
        z=z if math.isfinite(z) else None,
        p_value=p_value,
        reason=reason,
        **base,
    )


def latency_test(
    canary_p95s: Sequence[float], baseline_p95s: Sequence[float], *, settings: Settings
) -> LatencyResult:
    """One-sided Mann-Whitney U on per-merchant p95s, baseline inflated by the margin."""
    margin, alpha = settings.latency_margin, settings.alpha
    nc, nb = len(canary_p95s), len(baseline_p95s)
    mc = _median(canary_p95s)
    mb = _median(baseline_p95s)
    ratio = mc / mb if mc is not None and mb else None
    base = dict(
        canary_merchants=nc,
        baseline_merchants=nb,
        canary_p95_median=mc,
        baseline_p95_median=mb,
        ratio=ratio,
        margin=margin,
        alpha=alpha,
    )
    short = _too_few(nc, nb, settings.min_merchants, "merchants reporting payment latency")
    if short:
        return LatencyResult(
            verdict=INCONCLUSIVE, u=None, p_value=None, rank_biserial=None, reason=short, **base
        )
    inflated = [value * (1 + margin) for value in baseline_p95s]
    result = scipy_stats.mannwhitneyu(list(canary_p95s), inflated, alternative="greater")
    u, p_value = float(result.statistic), float(result.pvalue)
    failed = p_value < alpha
    verdict_text = (
        f"slower than the baseline by more than {margin:.0%} (Mann-Whitney U = {u:g}, one-sided "
        f"{_p(p_value)} < α = {alpha:g})"
        if failed
        else f"not significantly slower than the baseline + {margin:.0%} (U = {u:g}, {_p(p_value)})"
    )
    reason = (
        f"payment p95 latency median {mc:.0f} ms on the canary vs {mb:.0f} ms on the baseline: {verdict_text}"
    )
    return LatencyResult(
        verdict=FAIL if failed else PASS,
        u=u,
        p_value=p_value,
        rank_biserial=2 * u / (nc * nb) - 1,
        reason=reason,
        **base,
    )


def combine(*verdicts: str) -> str:
    """Any fail fails; otherwise any inconclusive is inconclusive; else pass."""
    if FAIL in verdicts:
        return FAIL
    if INCONCLUSIVE in verdicts:
        return INCONCLUSIVE
    return PASS


def _too_few(canary: int, baseline: int, minimum: int, what: str) -> str:
    if canary < minimum or baseline < minimum:
        return f"not enough data yet: {canary} canary / {baseline} baseline {what}, {minimum} needed in each"
    return ""


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _num(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else ("∞" if value > 0 else "-∞")


def _p(value: float) -> str:
    return "p < 0.0001" if value < 0.0001 else f"p = {value:.4f}"
