"""Writes for users and API clients."""

import secrets
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from accounts.locks import lock_user_named
from accounts.models import ApiRole, User


@dataclass(frozen=True)
class ApiClientResult:
    user: User
    created: bool
    password: str | None  # the password that was set now, if any
    role_changed: bool


def api_client_create_or_update(*, name: str, role: str, password: str | None = None) -> ApiClientResult:
    """Create an API client, or bring an existing one to the given role (and password, if given).

    Running it twice with the same arguments changes nothing the second time.

    :raises ValueError: on an unknown role, or a name that belongs to a staff user.
    """
    if role not in ApiRole.values:
        raise ValueError(f"role must be one of {', '.join(ApiRole.values)}")
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
