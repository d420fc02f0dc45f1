"""The seed's 115ter paths: releases, rollouts, rollouts/auto-check, rollouts/<id>/pause|resume,
rollouts/<plugin>/should-upgrade, GET rollouts/<plugin> and PATCH rollouts/<id>."""

from __future__ import annotations

from molam_upgrades.api.viewsets import SeedRouter

from .views import ReleaseViewSet, RolloutViewSet

router = SeedRouter()
router.register("releases", ReleaseViewSet, basename="api-release")
router.register("rollouts", RolloutViewSet, basename="api-rollout")
urlpatterns = router.urls
