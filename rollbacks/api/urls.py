"""The seed's 115bis paths: POST upgrades, POST rollback, rollback/initiate|pending|history|stats,
POST rollback/<uuid>/complete."""

from __future__ import annotations

from molam_upgrades.api.viewsets import SeedRouter

from .views import RollbackViewSet, UpgradeReportViewSet

router = SeedRouter()
router.register("upgrades", UpgradeReportViewSet, basename="api-upgrade")
router.register("rollback", RollbackViewSet, basename="api-rollback")
urlpatterns = router.urls
