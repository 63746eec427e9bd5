"""Back office for refunds: list with filters, search by ids, money formatted; the refund parts of the payment page.

`RefundInline` and `PaymentRefundAdminMixin` (the staff refund form) are composed into the payment page
by `backoffice.admin`.
"""

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from accounts.models import User
from audit.admin import AuditedCsvExportMixin
from config.admin import CappedCountPaginator, ReadOnlyAdminMixin
from config.api.errors import ApplicationError
from payments.admin import RETRY_PERMISSION, PaymentAdmin
from payments.money import format_amount, format_decimal, get_currency, parse_major
from refunds.models import Refund, RefundReason, RefundStatusChange
from refunds.selectors import refund_approval_limit, refundable_amount
from refunds.services import refund_retry_stuck, staff_refund_request


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


class StaffRefundForm(forms.Form):
    """A refund typed in major units of the payment's currency; converted to minor units once, here."""

    amount = forms.CharField(max_length=32, help_text="In major units, e.g. 12.50")
    refund_reason = forms.ChoiceField(choices=RefundReason.choices, initial=RefundReason.REQUESTED_BY_CUSTOMER)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Why (kept in the audit trail).")

    def __init__(self, *args: Any, currency: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        exponent = get_currency(currency).exponent
        self.fields["amount"].help_text = f"In {currency.upper()}, up to {exponent} decimal places."

    def clean_amount(self) -> int:
        try:
            amount = parse_major(self.cleaned_data["amount"], self.currency)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if amount <= 0:
            raise forms.ValidationError("The amount must be positive.")
        return amount

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


class PaymentRefundAdminMixin(PaymentAdmin):
    """The payment page's Refund button and form (one call into `staff_refund_request`)."""

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="payments_payment_refund",
            )
        ]
        return own + super().get_urls()

    def page_context(self, request: HttpRequest, payment: Any) -> dict[str, Any]:
        return {**super().page_context(request, payment), "can_refund": request.user.has_perm("refunds.add_refund")}

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        payment = self.payment_for(request, object_id, "refunds.add_refund")
        remaining = refundable_amount(payment)
        form = StaffRefundForm(
            request.POST or None,
            currency=payment.currency,
            initial={"amount": format_decimal(max(remaining, 0), payment.currency)},
        )
        if request.method == "POST" and form.is_valid():
            try:
                outcome = staff_refund_request(
                    payment=payment,
                    amount=form.cleaned_data["amount"],
                    refund_reason=form.cleaned_data["refund_reason"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,  # type: ignore[arg-type]
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
            except ApplicationError as exc:
                form.add_error("amount", exc.message)
            else:
                return self.done(request, payment, outcome if not isinstance(outcome, Refund) else f"Refund {outcome}")
        limit = refund_approval_limit(currency=payment.currency)
        return self.action_page(
            request,
            payment,
            form,
            title=f"Refund {payment.public_id}",
            template="admin/payments/payment/refund.html",
            remaining=format_amount(max(remaining, 0), payment.currency),
            limit=format_amount(limit, payment.currency),
        )


@admin.register(Refund)
class RefundAdmin(AuditedCsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
            if refund_retry_stuck(refund_id=refund_id, actor=cast(User, request.user), remote_addr=remote_addr):
                retried += 1
            else:
                skipped += 1
        level = messages.WARNING if skipped else messages.SUCCESS
        self.message_user(request, f"Retry queued for {retried} refund(s); {skipped} skipped (not pending).", level)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return format_amount(obj.amount, obj.currency)
