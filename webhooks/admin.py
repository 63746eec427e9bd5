"""Back office for the Stripe inbox: read-only, filtered by status, type and date, with a reprocess action."""

from typing import cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import User
from audit.services import staff_action_record
from config.admin import CappedCountPaginator, ReadOnlyAdminMixin
from webhooks import services
from webhooks.handlers import HANDLED_TYPES
from webhooks.models import WebhookEvent, WebhookStatus

OTHER_TYPES = "other"


class TypeFilter(admin.SimpleListFilter):
    """The handled types plus "other", without a DISTINCT over the whole inbox."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(HANDLED_TYPES)] + [(OTHER_TYPES, "Other (not handled)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> QuerySet[WebhookEvent]:
        value = self.value()
        if not value:
            return queryset
        if value == OTHER_TYPES:
            return queryset.exclude(type__in=HANDLED_TYPES)
        return queryset.filter(type=value)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "stripe_id",
        "type",
        "status",
        "ignored_reason",
        "received_at",
        "received_via",
        "attempts",
        "payment",
        "refund",
    )
    list_filter = ("status", TypeFilter, ("received_at", admin.DateFieldListFilter), "ignored_reason", "received_via")
    search_fields = ("=stripe_id", "=type", "=payment__public_id", "=payment__gateway_reference", "=refund__public_id")
    list_select_related = ("payment", "refund")
    show_full_result_count = False
    paginator = CappedCountPaginator
    ordering = ("-received_at", "-id")
    actions = ("reprocess",)
    readonly_fields = (
        "stripe_id",
        "type",
        "status",
        "ignored_reason",
        "attempts",
        "received_at",
        "received_via",
        "processed_at",
        "created_at",
        "api_version",
        "livemode",
        "payment",
        "refund",
        "last_error",
        "body",
    )

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.reprocess_webhookevent")

    @admin.action(description="Reprocess selected events (failed, received or ignored)", permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        outcomes = []
        for webhook_event_id, stripe_id in queryset.order_by("received_at", "id").values_list("pk", "stripe_id"):
            outcome = services.webhook_event_reprocess(webhook_event_id=webhook_event_id)
            outcomes.append(outcome)
            staff_action_record(
                actor=cast(User, request.user),  # the admin only lets staff users in
                action="reprocess_webhook",
                object_type="webhook_event",
                object_id=stripe_id,
                after={"outcome": outcome},
                remote_addr=request.META.get("REMOTE_ADDR"),
            )
        names = (WebhookStatus.PROCESSED, WebhookStatus.IGNORED, WebhookStatus.FAILED, "skipped")
        summary = ", ".join(f"{outcomes.count(name)} {name}" for name in names)
        failed = outcomes.count(WebhookStatus.FAILED)
        self.message_user(request, f"Reprocessed: {summary}.", messages.WARNING if failed else messages.SUCCESS)


class WebhookEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The Stripe events that touched a payment, newest first, on its page."""

    model = WebhookEvent
    fk_name = "payment"
    fields = ("stripe_id", "type", "status", "ignored_reason", "attempts", "received_at", "processed_at")
    readonly_fields = fields
    ordering = ("-received_at",)
    show_change_link = True
    extra = 0
