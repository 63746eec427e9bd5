"""Writes for users and API clients (staff authenticators too), and the housekeeping of refresh-token records."""

import secrets
from base64 import b32encode
from dataclasses import dataclass

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

# Used through `_default_manager`: the type stubs take these models for abstract (no `objects`).
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.locks import lock_user_named
from accounts.models import ApiRole, User

TOTP_DEVICE_NAME = "authenticator"
BACKUP_DEVICE_NAME = "backup codes"


@dataclass(frozen=True)
class ApiClientResult:
    user: User
    created: bool
    password: str | None  # the password that was set now, if any
    role_changed: bool


def api_client_create_or_update(*, name: str, role: str, password: str | None = None) -> ApiClientResult:
    """Create an API client, or bring an existing one to the given role (and password, if given).

    Running it twice with the same arguments changes nothing the second time.

    A given password must pass Django's validators (`AUTH_PASSWORD_VALIDATORS`); changing it refuses every
    token issued before (config/api/auth.py).

    :raises ValueError: on an unknown role, a password the validators refuse, or a name that belongs to a
        staff user.
    """
    if role not in ApiRole.values:
        raise ValueError(f"role must be one of {', '.join(ApiRole.values)}")
    if password:
        try:
            validate_password(password, User(username=name, api_role=role))
        except ValidationError as exc:
            raise ValueError("password refused: " + " ".join(exc.messages)) from exc
    with transaction.atomic():
        user = lock_user_named(name)
        created = user is None
        if user is None:
            try:
                with transaction.atomic():
                    user = User.objects.create(username=name, api_role=role)
            except IntegrityError:
                user = lock_user_named(name)
                assert user is not None  # noqa: S101 - the insert that failed says it exists
                created = False
        if user.is_staff or user.is_superuser:
            raise ValueError(f"{name!r} is a staff user, not an API client")
        role_changed = not created and user.api_role != role
        new_password = password
        if created and not password:
            new_password = secrets.token_urlsafe(24)
        user.api_role = role
        if new_password:
            user.set_password(new_password)
        user.save()
    return ApiClientResult(user=user, created=created, password=new_password, role_changed=role_changed)


def tokens_purge_expired(*, batch_size: int = 5000) -> int:
    """Delete the refresh-token records (outstanding and spent) whose tokens have expired; returns how many.

    An expired token is refused for its expiry alone, so its record is no longer needed. In batches, so that
    a large backlog never holds one long transaction.
    """
    deleted = 0
    while True:
        expired = OutstandingToken._default_manager.filter(expires_at__lte=timezone.now())
        batch = list(expired.values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted
        BlacklistedToken._default_manager.filter(token_id__in=batch).delete()
        count, _ = OutstandingToken._default_manager.filter(pk__in=batch).delete()
        deleted += count


@dataclass(frozen=True)
class Enrolment:
    device: TOTPDevice
    secret: str  # base32, what an authenticator app takes by hand
    url: str  # otpauth://totp/…, what it takes from a QR code
    backup_codes: list[str]


def totp_secret(device: TOTPDevice) -> str:
    """The device's key in base32 (no padding), as authenticator apps show and take it."""
    return b32encode(device.bin_key).decode().rstrip("=")


def staff_totp_enroll(*, username: str, backup_codes: int = 0, replace: bool = True) -> Enrolment:
    """Give a staff member a new confirmed TOTP device (replacing any other), and `backup_codes` one-time codes.

    With `replace=False` an existing authenticator is kept and returned (demo data: an app set up once keeps
    working across runs).

    :raises ValueError: when no staff user has that username.
    """
    with transaction.atomic():
        user = lock_user_named(username)
        if user is None or not user.is_staff:
            raise ValueError(f"no staff user named {username!r}")
        device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
        if device is None or replace:
            TOTPDevice.objects.filter(user=user).delete()
            device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=True)
        codes: list[str] = []
        if backup_codes:
            StaticDevice.objects.filter(user=user).delete()
            static = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
            codes = [StaticToken.random_token() for _ in range(backup_codes)]
            StaticToken.objects.bulk_create(StaticToken(device=static, token=code) for code in codes)
    return Enrolment(device=device, secret=totp_secret(device), url=device.config_url, backup_codes=codes)
