from __future__ import annotations

from django.db import models


class GateKind(models.TextChoices):
    """How a stage judges the rollout's error rate before the next stage opens."""

    # The observed rate (the one Sira pauses on) must not exceed the stage's maximum.
    RATE = "rate", "Error rate at most the maximum"
    # The Wilson 95 % *upper* bound of the failure rate must not exceed the maximum: widen only
    # when the sample shows, with confidence, that the rollout is healthy (stricter on small samples).
    WILSON = "wilson", "Wilson 95 % upper bound at most the maximum"


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
