"""Factories for users: API clients (storefront, finance) and admin staff (each with a TOTP authenticator)."""

from collections.abc import Iterable

import factory
from django.contrib.auth.models import Group, Permission
from django.test.client import ClientMixin
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiRole, User

PASSWORD = "a-long-test-password"


class UserFactory(factory.django.DjangoModelFactory):
    """An API client: storefront by default; `UserFactory(finance=True)` or `api_role=ApiRole.FINANCE` for finance."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    class Params:
        finance = factory.Trait(api_role=ApiRole.FINANCE)
        storefront = factory.Trait(api_role=ApiRole.STOREFRONT)

    username = factory.Sequence(lambda n: f"client-{n}")
    password = factory.django.Password(PASSWORD)
    api_role = ApiRole.STOREFRONT


def _permission(permission: Permission | str) -> Permission:
    """A Permission, or one named `codename` or `app_label.codename`."""
    if isinstance(permission, Permission):
        return permission
    app_label, _, codename = permission.rpartition(".")
    permissions = Permission.objects.filter(codename=codename)
    return permissions.get(content_type__app_label=app_label) if app_label else permissions.get()


class StaffUserFactory(UserFactory):
    """A staff member of the admin: `groups=["finance_agent"]`, `permissions=["app.codename"]`, `superuser=True`."""

    class Params:
        superuser = factory.Trait(is_superuser=True)

    username = factory.Sequence(lambda n: f"staff-{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    api_role = ""
    is_staff = True

    @factory.post_generation
    def groups(self, create: bool, extracted: Iterable[Group | str] | None, **kwargs) -> None:
        """Groups (or group names, which must exist: the staff groups migration creates them)."""
        if create and extracted:
            self.groups.add(*(g if isinstance(g, Group) else Group.objects.get(name=g) for g in extracted))

    @factory.post_generation
    def permissions(self, create: bool, extracted: Iterable[Permission | str] | None, **kwargs) -> None:
        if create and extracted:
            self.user_permissions.add(*(_permission(p) for p in extracted))

    @factory.post_generation
    def totp(self, create: bool, extracted: bool | None, **kwargs) -> None:
        """A confirmed TOTP authenticator, as `staff_totp_enroll` gives; `totp=False` for a staff member without."""
        if create and extracted is not False:
            TOTPDevice.objects.create(user=self, name="authenticator", confirmed=True)


def totp_device(user: User) -> TOTPDevice:
    """The user's confirmed TOTP device, created when there is none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def totp_code(user: User | str) -> str:
    """A code the user's authenticator shows now, accepted by the next sign-in.

    django-otp takes each time step's code once (`last_t`) and slows a device down after a failure: both are
    reset, so a test may sign the same user in twice within 30 seconds, or after a wrong code.
    """
    if isinstance(user, str):
        user = User.objects.get(username=user)
    device = totp_device(user)
    TOTPDevice.objects.filter(pk=device.pk).update(
        last_t=-1, throttling_failure_count=0, throttling_failure_timestamp=None
    )
    return f"{TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token():06d}"


def verify_staff_session(client: ClientMixin, user: User) -> None:
    """Mark a signed-in test client's session as verified by the user's authenticator, as a code at sign-in does."""
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = totp_device(user).persistent_id
    session.save()
