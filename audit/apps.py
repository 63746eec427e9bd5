"""App configuration for `audit`: the ground floor of the back office."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"

    def ready(self) -> None:
        # Imported here, not at the top: these modules use models, which load only after the app registry.
        from audit.auditlog import register_models

        register_models()
