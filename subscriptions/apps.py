"""App configuration for `subscriptions`: prices, subscriptions and invoices mirrored from the gateway's billing."""

from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "subscriptions"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from subscriptions.models import Invoice, Subscription

        auditlog.register(Subscription, exclude_fields=["updated_at", "metadata"])
        auditlog.register(Invoice, exclude_fields=["updated_at"])
