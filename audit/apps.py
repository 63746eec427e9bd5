"""App configuration for `audit`."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"

    def ready(self) -> None:
        from audit.auditlog import register_models

        register_models()
        from audit import reconciliation_admin  # noqa: F401
