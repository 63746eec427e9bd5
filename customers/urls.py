"""Customers API routes (mounted under /api/v1/)."""

from django.urls import path

from customers.api import (
    CustomerExportViewSet,
    CustomerPaymentMethodViewSet,
    CustomerViewSet,
    PaymentMethodViewSet,
    SetupIntentViewSet,
)

urlpatterns = [
    path(
        "customers/<str:customer_id>/",
        CustomerViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="customer-detail",
    ),
    path(
        "customers/<str:customer_id>/export/",
        CustomerExportViewSet.as_view({"get": "retrieve"}),
        name="customer-export",
    ),
    path(
        "customers/<str:customer_id>/setup_intents/",
        SetupIntentViewSet.as_view({"post": "create"}),
        name="customer-setup-intents",
    ),
    path(
        "customers/<str:customer_id>/payment_methods/",
        CustomerPaymentMethodViewSet.as_view({"get": "list", "post": "create"}),
        name="customer-payment-methods",
    ),
    path(
        "payment_methods/<str:id>/", PaymentMethodViewSet.as_view({"delete": "destroy"}), name="payment-method-detail"
    ),
]
