"""App configuration for `reconciliation` (label `reconciliation`): our records against the gateway's."""

from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reconciliation"
    label = "reconciliation"
    verbose_name = "Reconciliation"

    def ready(self) -> None:
        # Imported here, not at the top: auditlog.registry loads models, which load only after the app registry.
        from auditlog.registry import auditlog

        auditlog.register(self.get_model("Discrepancy"))  # staff resolving or accepting one shows in the audit log
