"""The back office's admin site: a password and a TOTP code (django-otp), and failed codes count for django-axes.

`StaffAdminSite` is the default admin site (`config.admin.apps.StaffAdminConfig`): `/admin/login/` asks for the
username, the password and the six-digit code of the staff member's authenticator, and only a session verified
by a device (`OTPMiddleware`) reaches any admin page. A staff member without a confirmed device cannot sign in
(`manage.py staff_totp_enroll USERNAME` enrols one; docs/operations/runbooks.md, "Staff sign-in").
"""

from typing import Any

from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django_otp import user_has_device
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

NO_DEVICE_MESSAGE = "No authenticator is enrolled for this account: ask an operator to enrol one."


class StaffAuthenticationForm(OTPAdminAuthenticationForm):
    """Username, password and one code; the code picks its device by its shape.

    django-otp asks for an explicit device (trying each would count a failure on every other one): six digits
    are the authenticator's code, anything else one of the backup codes (`staff_totp_enroll --backup-codes`).
    A wrong code is a failed sign-in for django-axes too (`user_login_failed`), so guessing codes with a
    known password locks out like guessing passwords; django-otp also slows each device down after a failure.
    """

    def _chosen_device(self, user: Any) -> Device | None:
        device = super()._chosen_device(user)
        if device is not None or self.cleaned_data.get("otp_device"):
            return device
        token = (self.cleaned_data.get("otp_token") or "").strip()
        model = TOTPDevice if token.isascii() and token.isdigit() else StaticDevice
        return model.objects.filter(user=user, confirmed=True).order_by("pk").first()

    def clean_otp(self, user: Any) -> None:
        if user is None:
            return
        if not user_has_device(user, confirmed=True):
            raise ValidationError(NO_DEVICE_MESSAGE, code="no_device")
        try:
            super().clean_otp(user)
        except ValidationError:
            user_login_failed.send(sender=__name__, credentials={"username": user.get_username()}, request=self.request)
            raise


class StaffAdminSite(OTPAdminSite):
    """django-otp's admin site under the default name, so `admin:` URLs and `admin.site` stay as they were."""

    login_form = StaffAuthenticationForm

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
