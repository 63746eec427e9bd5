"""App configuration for `accounts`."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from accounts.middleware import stamp_signed_in

        # Auth plumbing, not domain flow: the session's clocks start in login() itself, whoever calls it.
        user_logged_in.connect(stamp_signed_in, dispatch_uid="accounts.stamp_signed_in")
