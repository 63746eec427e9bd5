"""Staff sign-in reads: a staff member's current TOTP code (django-otp), the address django-axes counts by."""

from django.http import HttpRequest
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User


def client_ip(request: HttpRequest) -> str | None:
    """django-axes' `AXES_CLIENT_IP_CALLABLE`: the peer address, as the rate limits and the audit trail read it."""
    return request.META.get("REMOTE_ADDR") or None


def staff_totp_code(*, user: User) -> str:
    """The current six-digit code of the user's authenticator (demos and tests only: DEBUG-gated by the command).

    :raises ValueError: when the user has no confirmed TOTP device.
    """
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    if device is None:
        raise ValueError(f"{user.get_username()!r} has no authenticator enrolled")
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"
