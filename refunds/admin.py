"""Back office for refunds: list with filters, search by ids, money formatted; inline on the payment."""

from django.contrib import admin

from payments.admin import PaymentAdmin, ReadOnlyAdminMixin
from payments.money import format_amount
from refunds.models import Refund, RefundStatusChange


class RefundStatusChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RefundStatusChange
    fields = ("created_at", "from_status", "to_status", "source", "actor", "reason")
    readonly_fields = fields
    extra = 0


class RefundInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Refund
    fields = ("public_id", "status", "amount_display", "reason", "needs_attention", "requested_by", "created_at")
    readonly_fields = fields
    ordering = ("-created_at",)
    show_change_link = True
    extra = 0

    @admin.display(description="amount")
    def amount_display(self, obj: Refund) -> str:
        return format_amount(obj.amount, obj.currency)


# The payments app knows nothing of refunds; refunds add themselves to its page.
PaymentAdmin.inlines = (*PaymentAdmin.inlines, RefundInline)  # type: ignore[assignment]


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "created_at",
        "status",
        "amount_display",
        "payment",
        "reason",
        "needs_attention",
        "attempts",
        "requested_by",
    )
    list_filter = ("status", "needs_attention", "reason", ("created_at", admin.DateFieldListFilter))
    search_fields = ("=public_id", "=gateway_reference", "=payment__public_id", "=payment__gateway_reference")
    list_select_related = ("payment", "requested_by")
    show_full_result_count = False
    ordering = ("-created_at", "-id")
    inlines = (RefundStatusChangeInline,)
    readonly_fields = (
        "public_id",
        "payment",
        "amount_display",
        "currency",
        "status",
        "reason",
        "failure_reason",
        "metadata",
        "gateway_reference",
        "requested_by",
        "attempts",
        "last_error",
        "needs_attention",
        "created_at",
        "updated_at",
    )
    exclude = ("amount", "idempotency_key")

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return format_amount(obj.amount, obj.currency)
