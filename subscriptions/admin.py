"""Back office for subscriptions and invoices: changelists fast at millions of rows (no full COUNT, exact
searches on indexed ids), read-only pages, and a staff cancel (now or at period end, with a reason, audited,
through the service)."""

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from accounts.models import User
from config.admin import CappedCountPaginator, ReadOnlyAdminMixin
from config.api.errors import ApplicationError
from gateways.base import GatewayError
from payments.money import format_amount
from subscriptions import states
from subscriptions.models import Invoice, InvoiceLine, Price, Subscription, SubscriptionStatusChange
from subscriptions.services import subscription_cancel

CANCEL_PERMISSION = "subscriptions.cancel_subscription"

MAX_MATCHES = 1000  # an exact search matches a few subscriptions; one customer's at most this many


class CancelForm(forms.Form):
    at_period_end = forms.BooleanField(required=False, help_text="Keep it active until the period ends.")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Why (kept in the audit trail).")

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


class StatusChangeInline(admin.TabularInline):
    model = SubscriptionStatusChange
    extra = 0
    can_delete = False
    fields = ("created_at", "from_status", "to_status", "source", "actor", "reason")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "status",
        "price",
        "quantity",
        "customer",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "created_at",
    )
    list_filter = ("status", "cancel_at_period_end")
    search_fields = ("public_id", "gateway_reference", "customer__customer_id")
    show_full_result_count = False  # no COUNT(*) over millions of rows
    paginator = CappedCountPaginator
    list_select_related = ("price", "customer")
    ordering = ("-created_at", "-id")
    inlines = (StatusChangeInline,)
    readonly_fields = (
        "public_id",
        "client",
        "customer",
        "price",
        "quantity",
        "status",
        "trial_start",
        "trial_end",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "canceled_at",
        "default_payment_method",
        "latest_invoice",
        "gateway",
        "gateway_reference",
        "metadata",
        "created_at",
        "updated_at",
    )

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        """Our id, the gateway's id or the storefront's customer id, exactly (each on an index)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        # One UNION of index lookups, read first: an OR across a join makes PostgreSQL scan (the customers'
        # changelist took 0.5 s a search at 1 M rows that way, bench/customer_admin_bench.py).
        matches = (
            Subscription.objects.filter(public_id=term)
            .order_by()
            .values_list("pk", flat=True)
            .union(
                Subscription.objects.filter(gateway_reference=term).order_by().values_list("pk", flat=True),
                Subscription.objects.filter(customer__customer_id=term).order_by().values_list("pk", flat=True),
            )
        )
        return queryset.filter(pk__in=list(matches[:MAX_MATCHES])), False

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="subscriptions_subscription_cancel",
            )
        ]
        return own + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        subscription = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if subscription is not None:
            context["can_cancel"] = (
                request.user.has_perm(CANCEL_PERMISSION) and subscription.status not in states.TERMINAL
            )
        return super().change_view(request, object_id, form_url, extra_context=context)

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A reason, then one call into `subscription_cancel` (audited there, with the change)."""
        subscription = self.get_object(request, object_id)
        if subscription is None or not self.has_view_permission(request, subscription):
            raise PermissionDenied
        if not request.user.has_perm(CANCEL_PERMISSION):
            raise PermissionDenied
        change_url = reverse("admin:subscriptions_subscription_change", args=[subscription.pk])
        if subscription.status in states.TERMINAL:
            self.message_user(request, f"Subscription {subscription.public_id} has ended already.", messages.WARNING)
            return HttpResponseRedirect(change_url)
        form = CancelForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                done = subscription_cancel(
                    subscription=subscription,
                    at_period_end=form.cleaned_data["at_period_end"],
                    source="admin",
                    actor=cast(User, request.user),
                    reason=form.cleaned_data["reason"],
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
            except (ApplicationError, GatewayError) as exc:
                form.add_error(None, f"The gateway did not cancel it: {exc}. Nothing changed; try again.")
            else:
                told = "at the end of its period" if done.cancel_at_period_end else "now"
                self.message_user(request, f"Subscription {done.public_id} canceled {told}.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": subscription,
            "title": f"Cancel {subscription.public_id}",
            "form": form,
        }
        return TemplateResponse(request, "admin/subscriptions/subscription/cancel.html", context)


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = ("description", "amount", "quantity", "price_reference", "period_start", "period_end")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "status",
        "amount_due_display",
        "amount_paid_display",
        "subscription",
        "customer",
        "period_start",
        "period_end",
        "attempt_count",
        "next_payment_attempt",
        "payment",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("public_id", "gateway_reference")
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_select_related = ("subscription", "customer", "payment")
    ordering = ("-created_at", "-id")
    inlines = (InvoiceLineInline,)
    readonly_fields = (
        "public_id",
        "client",
        "subscription",
        "customer",
        "status",
        "currency",
        "amount_due",
        "amount_paid",
        "amount_remaining",
        "attempt_count",
        "next_payment_attempt",
        "period_start",
        "period_end",
        "failure_code",
        "payment",
        "payment_intent_reference",
        "hosted_invoice_url",
        "gateway",
        "gateway_reference",
        "created_at",
        "updated_at",
    )

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(public_id=term) | Q(gateway_reference=term)), False

    @admin.display(description="amount due", ordering="amount_due")
    def amount_due_display(self, obj: Invoice) -> str:
        return format_amount(obj.amount_due, obj.currency)

    @admin.display(description="amount paid", ordering="amount_paid")
    def amount_paid_display(self, obj: Invoice) -> str:
        return format_amount(obj.amount_paid, obj.currency)


@admin.register(Price)
class PriceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("reference", "product", "unit_amount_display", "interval", "interval_count", "active")
    list_filter = ("active", "interval", "currency")
    list_select_related = ("product",)
    search_fields = ("=reference",)

    @admin.display(description="unit amount", ordering="unit_amount")
    def unit_amount_display(self, obj: Price) -> str:
        return format_amount(obj.unit_amount, obj.currency)
