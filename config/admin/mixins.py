"""Admin mixins shared by every app's back office."""

from typing import Any

from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """Money rows change only through services; the admin never edits them directly."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
