from __future__ import annotations

from django.apps import AppConfig


class PlansConfig(AppConfig):
    """Staged rollout plans: templates, stages with health gates, schedule windows, dry-run."""

    name = "plans"
    verbose_name = "Rollout plans"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from molam_upgrades import registry

        from . import demo

        registry.register_api_urls("plans.api.urls")
        registry.register_page_urls("plans.urls")
        registry.register_demo_data("plans", demo.seed, order=25)  # after the rollouts (20)
        # Decisions obey a plan's windows (cached with the rest of the decision data).
        from rollouts import cohort

        from .services import schedule_for_decisions

        cohort.register_gate_loader(schedule_for_decisions)
