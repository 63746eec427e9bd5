"""App configuration for `customers`: customers and their saved payment methods, built on payments."""

from django.apps import AppConfig


class CustomersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "customers"

    def ready(self) -> None:
        # Imported here, not at the top: these modules use models, which load only after the app registry.
        from auditlog.registry import auditlog

        from customers.models import Customer, PaymentMethod

        # No personal data copied into the audit log (issue #20): e-mail and name are left out.
        auditlog.register(Customer, exclude_fields=["updated_at", "email", "name", "metadata"])
        auditlog.register(PaymentMethod, exclude_fields=["updated_at"])
