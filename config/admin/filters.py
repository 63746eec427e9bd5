"""List filters that cost no query to draw."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class FixedChoicesFilter(admin.SimpleListFilter):
    """A filter whose choices are known in advance: no SELECT DISTINCT over the whole table."""

    options: tuple[tuple[str, str], ...] = ()

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return self.options

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset
