"""App configuration for `payments.risk` (label `risk`): the rules engine and the manual review queue."""

from django.apps import AppConfig


class RiskConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "payments.risk"
    label = "risk"
    verbose_name = "Risk"
