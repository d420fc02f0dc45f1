"""Demo plans (``seed_demo``): two open demo rollouts follow the seeded templates."""

from __future__ import annotations

from rollouts.choices import OPEN_STATES
from rollouts.models import Rollout

from . import services
from .models import PlanTemplate, RolloutPlan
from .seeds import SEEDED_TEMPLATES

ACTOR = "user:ops"
EVERY_NIGHT = [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "22:00", "end": "06:00"}]
DEMO_PLANS = [
    # plugin, version, template, time zone, windows
    ("woocommerce", "4.0.0", "canary-5-25-50-100", "UTC", []),
    ("magento", "2.4.7", "cautious-1-5-25-100", "Africa/Dakar", EVERY_NIGHT),
]


def seed(stdout=None) -> None:
    """Attach the demo plans once (idempotent: a rollout that already follows a plan is left alone)."""
    # The templates come with migration 0002; a database emptied since (tests) gets them back.
    for template in SEEDED_TEMPLATES:
        PlanTemplate.objects.get_or_create(
            slug=template["slug"], defaults={k: v for k, v in template.items() if k != "slug"}
        )
    for plugin_name, version, template, zone_name, windows in DEMO_PLANS:
        rollout = Rollout.objects.filter(
            plugin_name=plugin_name, version=version, status__in=OPEN_STATES
        ).first()
        if rollout is None or RolloutPlan.objects.filter(rollout=rollout).exists():
            continue
        services.attach_plan(
            rollout.pk, actor=ACTOR, template=template, timezone_name=zone_name, windows=windows
        )
        if stdout is not None:
            stdout.write(f"plan {template} for {plugin_name} {version}\n")
