"""Failure reason classes and canary verdicts."""

from __future__ import annotations

from django.db import models


class FailureReason(models.TextChoices):
    """Why a payment failed, in classes a shop can tell apart from its orders table."""

    DECLINED = "declined", "Declined by the issuer or the customer's wallet"
    FRAUD = "fraud", "Blocked by risk rules"
    GATEWAY_ERROR = "gateway_error", "Gateway or network error"
    TIMEOUT = "timeout", "Timed out"
    VALIDATION = "validation", "Invalid payment data"
    OTHER = "other", "Other"


class Verdict(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    INCONCLUSIVE = "inconclusive", "Inconclusive"


# Numeric value of a verdict for /metrics (a gauge): fail is the one an alert rule watches.
VERDICT_VALUES = {Verdict.PASS: 1, Verdict.INCONCLUSIVE: 0, Verdict.FAIL: -1}
