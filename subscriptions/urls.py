"""Prices, subscriptions and invoices API routes (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from subscriptions.api import InvoiceViewSet, PriceViewSet, SubscriptionViewSet

router = SimpleRouter()
router.register("prices", PriceViewSet, basename="price")
router.register("subscriptions", SubscriptionViewSet, basename="subscription")
router.register("invoices", InvoiceViewSet, basename="invoice")
urlpatterns = router.urls
