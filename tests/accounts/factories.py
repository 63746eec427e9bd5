"""Factories for users: API clients (storefront, finance) and admin staff."""

from collections.abc import Iterable

import factory
from django.contrib.auth.models import Group, Permission

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
