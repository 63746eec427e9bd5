"""Back office for payments: read-only, searchable, money formatted, history and events inline."""

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from payments.models import DeadLetter, Event, Payment, PaymentStatusChange
from payments.money import format_amount


class ReadOnlyAdminMixin:
    """Money rows change only through services; the admin never edits them directly."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StatusChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PaymentStatusChange
    fields = ("created_at", "from_status", "to_status", "source", "actor", "reason")
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    extra = 0


class EventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Event
    fields = ("public_id", "type", "sequence", "created_at", "published_at")
    readonly_fields = fields
    ordering = ("-sequence",)
    extra = 0


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "created_at",
        "status",
        "amount_display",
        "refunded_display",
        "customer_id",
        "order_id",
        "customer_email",
        "gateway",
    )
    list_filter = (
        "status",
        "needs_attention",
        ("disputed_at", admin.EmptyFieldListFilter),
        "currency",
        "gateway",
        "capture_method",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("=public_id", "=gateway_reference", "=customer_id", "=order_id", "=customer_email")
    date_hierarchy = "created_at"
    show_full_result_count = False  # no COUNT(*) over millions of rows
    list_select_related = ("client",)
    ordering = ("-created_at", "-id")
    inlines = (StatusChangeInline, EventInline)
    fieldsets = (
        (None, {"fields": ("public_id", "status", "client", "gateway", "gateway_reference")}),
        (
            "Money",
            {
                "fields": (
                    "amount_display",
                    "capturable_display",
                    "received_display",
                    "refunded_display",
                    "capture_method",
                )
            },
        ),
        (
            "Customer",
            {"fields": ("customer_id", "order_id", "customer_email", "customer_ip", "description", "metadata")},
        ),
        ("Failure", {"fields": ("failure_code", "failure_message", "cancellation_reason")}),
        ("Dispute", {"fields": ("disputed_at", "dispute_reason", "dispute_reference")}),
        (
            "Gateway operation in flight",
            {"fields": ("pending_operation", "pending_operation_at", "needs_attention", "last_error")},
        ),
        ("Times", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = (
        "public_id",
        "status",
        "client",
        "gateway",
        "gateway_reference",
        "amount_display",
        "capturable_display",
        "received_display",
        "refunded_display",
        "capture_method",
        "customer_id",
        "order_id",
        "customer_email",
        "customer_ip",
        "description",
        "metadata",
        "failure_code",
        "failure_message",
        "cancellation_reason",
        "pending_operation",
        "pending_operation_at",
        "needs_attention",
        "last_error",
        "disputed_at",
        "dispute_reason",
        "dispute_reference",
        "created_at",
        "updated_at",
    )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_staff and super().has_view_permission(request, obj)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Payment) -> str:
        return format_amount(obj.amount, obj.currency)

    @admin.display(description="capturable")
    def capturable_display(self, obj: Payment) -> str:
        return format_amount(obj.amount_capturable, obj.currency)

    @admin.display(description="received")
    def received_display(self, obj: Payment) -> str:
        return format_amount(obj.amount_received, obj.currency)

    @admin.display(description="refunded")
    def refunded_display(self, obj: Payment) -> str:
        return format_amount(obj.amount_refunded, obj.currency)


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
    list_display = ("public_id", "sequence", "type", "payment", "created_at", "published_at", "publish_attempts")
    list_filter = (PublishingFilter, "type")
    search_fields = ("=public_id", "=payment__public_id")
    list_select_related = ("payment",)
    show_full_result_count = False
    ordering = ("-sequence",)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Messages a consumer could not use (card numbers already masked), kept for inspection."""

    list_display = ("id", "source", "created_at", "error")
    list_filter = ("source", ("created_at", admin.DateFieldListFilter))
    search_fields = ("error",)
    readonly_fields = ("source", "created_at", "error", "headers", "body")
    show_full_result_count = False
