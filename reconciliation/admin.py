"""Admin for reconciliation: runs with counts (read-only), discrepancies to resolve or accept with a reason.

A discrepancy is about a payment, about a customer's saved payment method (linked to the customer's page),
about a subscription or one of its invoices (linked to their pages), or about a dispute (linked to its page when the
disputes admin is registered)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from payments.money import format_amount
from reconciliation.errors import DiscrepancyNotOpen, ReasonRequired
from reconciliation.models import Discrepancy, DiscrepancyState, ReconciliationRun
from reconciliation.services import discrepancy_close

_MONEY_KEYS = ("amount", "amount_received", "amount_refunded", "amount_due", "amount_paid", "amount_remaining")


def _describe(values: dict[str, Any]) -> str:
    """`amount: $10.00, status: succeeded` — money formatted with the currency's exponent."""
    currency = values.get("currency", "")
    parts = []
    for key, value in values.items():
        if key == "currency" and any(money in values for money in _MONEY_KEYS):
            continue  # shown in the formatted amounts
        if key in _MONEY_KEYS and currency and isinstance(value, int):
            try:
                value = format_amount(value, currency)
            except (KeyError, ValueError):  # a currency we do not know: show the raw minor units
                value = f"{value} {currency}"
        parts.append(f"{key}: {value}")
    return ", ".join(parts) or "—"


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "gateway",
        "scope",
        "window_start",
        "window_end",
        "status",
        "fix",
        "gateway_records",
        "our_records",
        "matched",
        "customers_compared",
        "gateway_payment_methods",
        "our_payment_methods",
        "payment_methods_matched",
        "gateway_subscriptions",
        "our_subscriptions",
        "subscriptions_matched",
        "gateway_invoices",
        "our_invoices",
        "invoices_matched",
        "gateway_disputes",
        "our_disputes",
        "disputes_matched",
        "discrepancies_found",
        "discrepancies_fixed",
        "open_discrepancies",
        "duration_seconds",
        "started_at",
    )
    list_filter = ("status", "scope", "gateway")
    date_hierarchy = None
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReconciliationRun]:
        return (
            super()
            .get_queryset(request)
            .annotate(open_count=Count("discrepancies", filter=Q(discrepancies__state=DiscrepancyState.OPEN)))
        )

    @admin.display(description="open", ordering="open_count")
    def open_discrepancies(self, run: ReconciliationRun) -> str:
        url = reverse("admin:reconciliation_discrepancy_changelist") + f"?run__id__exact={run.pk}&state__exact=open"
        return format_html('<a href="{}">{}</a>', url, run.open_count)  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReasonActionForm(ActionForm):
    reason = forms.CharField(required=False, label="Reason", widget=forms.TextInput(attrs={"size": 50}))


@admin.register(Discrepancy)
class DiscrepancyAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "run_id",
        "kind",
        "state",
        "payment_link",
        "payment_method_link",
        "subscription_link",
        "dispute_link",
        "gateway_reference",
        "ours_display",
        "theirs_display",
        "note",
        "resolved_by",
        "resolved_at",
        "created_at",
    )
    list_filter = ("kind", "state")
    list_select_related = (
        "payment",
        "customer",
        "payment_method",
        "subscription",
        "invoice",
        "dispute",
        "resolved_by",
    )
    search_fields = (
        "=gateway_reference",
        "=payment__public_id",
        "=payment_method__public_id",
        "=customer__public_id",
        "=subscription__public_id",
        "=invoice__public_id",
        "=dispute__public_id",
    )
    search_help_text = (
        "Exact gateway reference (pi_…, pm_…, sub_…, in_…, du_…), payment id (pay_…), saved method id (pmt_…), "
        "customer id (cu_…), or our subscription, invoice or dispute id (dp_…)."
    )
    show_full_result_count = False
    action_form = ReasonActionForm
    actions = ("resolve", "mark_accepted")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup == "run__id__exact" or super().lookup_allowed(lookup, value, request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="payment")
    def payment_link(self, discrepancy: Discrepancy) -> str:
        if discrepancy.payment is None:
            return "—"
        url = reverse("admin:payments_payment_change", args=[discrepancy.payment_id])
        return format_html('<a href="{}">{}</a>', url, discrepancy.payment.public_id)

    @admin.display(description="customer / saved method")
    def payment_method_link(self, discrepancy: Discrepancy) -> str:
        if discrepancy.customer is None:
            return "—"
        url = reverse("admin:customers_customer_change", args=[discrepancy.customer_id])
        if discrepancy.payment_method is None:
            return format_html('<a href="{}">{}</a>', url, discrepancy.customer.public_id)
        return format_html(
            '<a href="{}">{}</a> / {}', url, discrepancy.customer.public_id, discrepancy.payment_method.public_id
        )

    @admin.display(description="subscription / invoice")
    def subscription_link(self, discrepancy: Discrepancy) -> str:
        if discrepancy.subscription is None:
            return "—"
        url = reverse("admin:subscriptions_subscription_change", args=[discrepancy.subscription_id])
        link = format_html('<a href="{}">{}</a>', url, discrepancy.subscription.public_id)
        if discrepancy.invoice is None:
            return link
        url = reverse("admin:subscriptions_invoice_change", args=[discrepancy.invoice_id])
        return format_html('{} / <a href="{}">{}</a>', link, url, discrepancy.invoice.public_id)

    @admin.display(description="dispute")
    def dispute_link(self, discrepancy: Discrepancy) -> str:
        if discrepancy.dispute is None:
            return "—"
        try:
            url = reverse("admin:disputes_dispute_change", args=[discrepancy.dispute_id])
        except NoReverseMatch:  # the disputes admin is not registered
            return discrepancy.dispute.public_id
        return format_html('<a href="{}">{}</a>', url, discrepancy.dispute.public_id)

    @admin.display(description="ours")
    def ours_display(self, discrepancy: Discrepancy) -> str:
        return _describe(discrepancy.ours)

    @admin.display(description="gateway's")
    def theirs_display(self, discrepancy: Discrepancy) -> str:
        return _describe(discrepancy.theirs)

    @admin.action(description="Resolve selected discrepancies (reason required)", permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Discrepancy]) -> None:
        self._close(request, queryset, accept=False)

    @admin.action(description="Mark selected discrepancies accepted (reason required)", permissions=["change"])
    def mark_accepted(self, request: HttpRequest, queryset: QuerySet[Discrepancy]) -> None:
        self._close(request, queryset, accept=True)

    def _close(self, request: HttpRequest, queryset: QuerySet[Discrepancy], *, accept: bool) -> None:
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(request, "Give a reason in the Reason field next to the action.", messages.ERROR)
            return
        closed = skipped = 0
        for discrepancy_id in queryset.filter(state=DiscrepancyState.OPEN).values_list("pk", flat=True):
            try:
                discrepancy_close(discrepancy_id=discrepancy_id, actor=request.user, reason=reason, accept=accept)  # type: ignore[arg-type]
                closed += 1
            except (DiscrepancyNotOpen, ReasonRequired):
                skipped += 1
        verb = "accepted" if accept else "resolved"
        self.message_user(request, f"{closed} discrepancies {verb}; {skipped} were no longer open.", messages.SUCCESS)
