"""POST/GET payment-health, GET canary-analyses[/<rollout_id>]."""

from __future__ import annotations

from molam_upgrades.api.viewsets import SeedRouter

from .views import CanaryAnalysisViewSet, PaymentHealthViewSet

router = SeedRouter()
router.register("payment-health", PaymentHealthViewSet, basename="api-payment-health")
router.register("canary-analyses", CanaryAnalysisViewSet, basename="api-canary-analyses")
urlpatterns = router.urls
