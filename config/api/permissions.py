"""Permission predicates for API clients (roles from API.md)."""

from typing import Any, cast

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.models import ApiRole, User


def _role(request: Request) -> str | None:
    user = request.user
    if not (user and user.is_authenticated and user.is_active):
        return None
    return getattr(user, "api_role", None) or None


class IsApiClient(BasePermission):
    """Any API client (storefront or finance). Staff users without an API role are refused."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return _role(request) in {ApiRole.STOREFRONT, ApiRole.FINANCE}


class IsStorefrontClient(BasePermission):
    """Storefront clients create and act on their own payments."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return _role(request) == ApiRole.STOREFRONT


class IsFinanceClient(BasePermission):
    """Finance clients read everything and may refund."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return _role(request) == ApiRole.FINANCE


def request_client(request: Request) -> User:
    """The authenticated API client of a request that passed `IsApiClient`."""
    return cast(User, request.user)
