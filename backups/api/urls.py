"""The seed's backup paths: POST backup, GET/PATCH backup/<uuid>, GET backups."""

from __future__ import annotations

from molam_upgrades.api.viewsets import SeedRouter

from .views import BackupViewSet

router = SeedRouter()
router.register(
    "backup", BackupViewSet, basename="api-backup", actions={"create", "retrieve", "partial_update"}
)
router.register("backups", BackupViewSet, basename="api-backups", actions={"list"})
urlpatterns = router.urls
