"""Webhook routes (mounted at /api/v1/webhooks/stripe/)."""

from django.urls import path

from webhooks.api.views import stripe_webhook

urlpatterns = [path("", stripe_webhook, name="stripe-webhook")]
