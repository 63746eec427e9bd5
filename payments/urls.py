"""Payments API routes."""

from rest_framework.routers import SimpleRouter

from payments.api import EventViewSet, PaymentViewSet

router = SimpleRouter(trailing_slash=True)
router.register("payments", PaymentViewSet, basename="payment")
router.register("events", EventViewSet, basename="event")

urlpatterns = router.urls
