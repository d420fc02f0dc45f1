from __future__ import annotations

from django.db import models


class RolloutStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    ROLLED_BACK = "rolled_back", "Rolled back"


# At most one rollout per plugin may be in one of these states.
OPEN_STATES = (RolloutStatus.ACTIVE, RolloutStatus.PAUSED)
TERMINAL_STATES = (RolloutStatus.COMPLETED, RolloutStatus.ROLLED_BACK)

# Allowed status moves (SPEC.md): completed and rolled_back are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    RolloutStatus.ACTIVE: frozenset(
        {RolloutStatus.PAUSED, RolloutStatus.COMPLETED, RolloutStatus.ROLLED_BACK}
    ),
    RolloutStatus.PAUSED: frozenset(
        {RolloutStatus.ACTIVE, RolloutStatus.COMPLETED, RolloutStatus.ROLLED_BACK}
    ),
    RolloutStatus.COMPLETED: frozenset(),
    RolloutStatus.ROLLED_BACK: frozenset(),
}


class RolloutStrategy(models.TextChoices):
    RANDOM = "random", "Random"
    GEO = "geo", "Geographic"
    MERCHANT_TIER = "merchant_tier", "Merchant tier"
