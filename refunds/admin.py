"""Back office for refunds: list with filters, search by ids, money formatted; inline on the payment."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import URLPattern

from audit.services import refund_retry_stuck
from payments.admin import RETRY_PERMISSION, CappedCountPaginator, CsvExportMixin, PaymentAdmin, ReadOnlyAdminMixin
from payments.money import format_amount, format_decimal
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
class RefundAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
    paginator = CappedCountPaginator
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
    actions = ("export_csv", "retry_stuck")
    csv_object_type = "refund"
    csv_columns = (
        ("id", "public_id"),
        ("created_at", "created_at"),
        ("status", "status"),
        ("amount_minor", "amount"),
        ("amount", "amount"),
        ("currency", "currency"),
        ("reason", "reason"),
        ("payment_id", "payment__public_id"),
        ("customer_id", "payment__customer_id"),
        ("order_id", "payment__order_id"),
        ("payment_refunded_minor", "payment__amount_refunded"),
        ("needs_attention", "needs_attention"),
        ("attempts", "attempts"),
    )

    def csv_line(self, row: tuple[Any, ...]) -> list[Any]:
        public_id, created_at, status, amount, _, currency, *rest = row
        return [public_id, created_at.isoformat(), status, amount, format_decimal(amount, currency), currency, *rest]

    def get_urls(self) -> list[URLPattern]:
        return [self.csv_url("refunds_refund_export_csv"), *super().get_urls()]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # refunds.add_refund: finance_agent and finance_lead hold it, auditor does not (no new permission).
        return request.user.has_perm(RETRY_PERMISSION)

    @admin.action(description="Retry selected stuck refunds (pending: submit again, same key)", permissions=["retry"])
    def retry_stuck(self, request: HttpRequest, queryset: QuerySet[Refund]) -> None:
        remote_addr = request.META.get("REMOTE_ADDR")
        retried = skipped = 0
        for refund_id in queryset.order_by("id").values_list("pk", flat=True):
            if refund_retry_stuck(refund_id=refund_id, actor=request.user, remote_addr=remote_addr):
                retried += 1
            else:
                skipped += 1
        level = messages.WARNING if skipped else messages.SUCCESS
        self.message_user(request, f"Retry queued for {retried} refund(s); {skipped} skipped (not pending).", level)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return format_amount(obj.amount, obj.currency)
