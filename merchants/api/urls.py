"""GET/POST merchants, GET/PATCH merchants/<id>, POST merchants/<id>/rotate-secret, GET merchant-notices."""

from __future__ import annotations

from molam_upgrades.api.viewsets import SeedRouter

from .views import MerchantViewSet, NoticeViewSet

router = SeedRouter()
router.register("merchants", MerchantViewSet, basename="api-merchants")
router.register("merchant-notices", NoticeViewSet, basename="api-merchant-notices")
urlpatterns = router.urls
