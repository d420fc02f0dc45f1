"""The plan templates every installation starts with (data migration 0002)."""

from __future__ import annotations

DAY = 24 * 60

SEEDED_TEMPLATES = [
    {
        "slug": "canary-5-25-50-100",
        "name": "Canary 5 → 25 → 50 → 100 over 4 days",
        "description": (
            "A day at each of 5 %, 25 % and 50 %, then a day at 100 % before the plan is done. "
            "Each stage needs its sample of merchants reporting and an error rate at or below the "
            "rollout's threshold."
        ),
        "stages": [
            {
                "percentage": "5",
                "min_soak_minutes": DAY,
                "min_merchants": 20,
                "max_error_rate": None,
                "gate": "rate",
            },
            {
                "percentage": "25",
                "min_soak_minutes": DAY,
                "min_merchants": 50,
                "max_error_rate": None,
                "gate": "rate",
            },
            {
                "percentage": "50",
                "min_soak_minutes": DAY,
                "min_merchants": 100,
                "max_error_rate": None,
                "gate": "rate",
            },
            {
                "percentage": "100",
                "min_soak_minutes": DAY,
                "min_merchants": 100,
                "max_error_rate": None,
                "gate": "rate",
            },
        ],
    },
    {
        "slug": "cautious-1-5-25-100",
        "name": "Cautious 1 → 5 → 25 → 100",
        "description": (
            "A 1 % canary for a day, 5 % for two days, 25 % for three days; from 25 % on, the next "
            "stage opens only when the Wilson 95 % upper bound of the failure rate is within the "
            "threshold (about 150 merchants without failure at a 3 % threshold)."
        ),
        "stages": [
            {
                "percentage": "1",
                "min_soak_minutes": DAY,
                "min_merchants": 10,
                "max_error_rate": None,
                "gate": "rate",
            },
            {
                "percentage": "5",
                "min_soak_minutes": 2 * DAY,
                "min_merchants": 25,
                "max_error_rate": None,
                "gate": "rate",
            },
            {
                "percentage": "25",
                "min_soak_minutes": 3 * DAY,
                "min_merchants": 150,
                "max_error_rate": None,
                "gate": "wilson",
            },
            {
                "percentage": "100",
                "min_soak_minutes": 3 * DAY,
                "min_merchants": 150,
                "max_error_rate": None,
                "gate": "wilson",
            },
        ],
    },
]
