"""Back office for the outbox: every event, where it is in publishing, searchable by id and subject."""

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from config.admin import CappedCountPaginator, ReadOnlyAdminMixin
from events.models import Event


class PublishingFilter(admin.SimpleListFilter):
    """Where an event is in the outbox: published, waiting, or dead-lettered (attempts ran out)."""

    title = "publishing"
    parameter_name = "publishing"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("published", "Published"), ("waiting", "Waiting"), ("dead", "Dead-lettered")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        limit = settings.OUTBOX_MAX_PUBLISH_ATTEMPTS
        if self.value() == "published":
            return queryset.filter(published_at__isnull=False)
        if self.value() == "waiting":
            return queryset.filter(published_at__isnull=True, publish_attempts__lt=limit)
        if self.value() == "dead":
            return queryset.filter(published_at__isnull=True, publish_attempts__gte=limit)
        return queryset


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("public_id", "sequence", "type", "subject_id", "created_at", "published_at", "publish_attempts")
    list_filter = (PublishingFilter, "type")
    search_fields = ("=public_id", "=subject_id")
    show_full_result_count = False
    paginator = CappedCountPaginator
    ordering = ("-sequence",)
