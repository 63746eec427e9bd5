"""App configuration for `risk` (label `risk`): the rules engine and the manual review queue."""

from django.apps import AppConfig


class RiskConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "risk"
    label = "risk"
    verbose_name = "Risk"

    def ready(self) -> None:
        # Imported here, not at the top: these modules use models, which load only after the app registry.
        from auditlog.registry import auditlog

        from risk.models import BlocklistEntry, CurrencyThreshold, RiskSettings

        for model in (RiskSettings, CurrencyThreshold, BlocklistEntry):
            auditlog.register(model)
