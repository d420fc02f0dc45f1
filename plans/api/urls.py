"""Plan routes under /api/plugins/. ``rollouts/simulate`` must resolve before the rollouts app's
``rollouts/<plugin_name>``: the plans app is listed before rollouts in INSTALLED_APPS, so its
routes are registered (and matched) first."""

from __future__ import annotations

from django.urls import path

from molam_upgrades.api.viewsets import SeedRouter

from .views import PlanTemplateViewSet, RolloutPlanViewSet, SimulateViewSet

router = SeedRouter()
router.register("plan-templates", PlanTemplateViewSet, basename="api-plan-templates")

plan = "rollouts/<int:rollout_id>/plan"
urlpatterns = [
    path("rollouts/simulate", SimulateViewSet.as_view({"post": "simulate"}), name="api-rollouts-simulate"),
    path(
        plan,
        RolloutPlanViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="api-rollout-plan",
    ),
    *[
        path(f"{plan}/{verb}", RolloutPlanViewSet.as_view({"post": verb}), name=f"api-rollout-plan-{verb}")
        for verb in ("hold", "release", "skip", "back")
    ],
    *router.urls,
]
