"""Disputes API routes (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from disputes.api import DisputeViewSet

router = SimpleRouter()
router.register("disputes", DisputeViewSet, basename="dispute")
urlpatterns = router.urls
