"""Refunds API routes."""

from django.urls import path

from refunds.api import PaymentRefundViewSet, RefundViewSet

urlpatterns = [
    path(
        "payments/<str:payment_id>/refunds/",
        PaymentRefundViewSet.as_view({"get": "list", "post": "create"}),
        name="payment-refunds",
    ),
    path("refunds/", RefundViewSet.as_view({"get": "list"}), name="refund-list"),
    path("refunds/<str:id>/", RefundViewSet.as_view({"get": "retrieve"}), name="refund-detail"),
]
