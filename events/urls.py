"""Event feed routes."""

from rest_framework.routers import SimpleRouter

from events.api import EventViewSet

router = SimpleRouter(trailing_slash=True)
router.register("events", EventViewSet, basename="event")

urlpatterns = router.urls
