from __future__ import annotations

from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "rollouts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from molam_upgrades import registry
        from rollbacks.aggregates import CohortQuery, set_cohort_query

        from . import cohort, demo, metrics, monitoring
        from .choices import OPEN_STATES

        registry.register_api_urls("rollouts.api.urls")
        registry.register_page_urls("rollouts.urls")
        registry.register_kpi("rollout_velocity_days", metrics.rollout_velocity_days)
        registry.register_metrics("rollouts", read=monitoring.read, collect=monitoring.collect)
        registry.register_readiness_check("sira", monitoring.readiness, body_key="sira")
        registry.register_demo_data("rollouts", demo.seed, order=20)
        # Upgrade reports (owned by rollbacks) are stamped with the rollout and cohort they belong to.
        set_cohort_query(CohortQuery(cohort.REPORT_COHORT_TEMPLATE, OPEN_STATES, cohort.bucket_for))
