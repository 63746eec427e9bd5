"""App configuration for `backoffice` (label `backoffice`): the staff's admin, composed from every app."""

from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "backoffice"
    label = "backoffice"
    verbose_name = "Back office"
