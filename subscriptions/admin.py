"""Back office for subscriptions and invoices: changelists fast at millions of rows (no full COUNT, exact
searches on indexed ids), read-only pages, and staff actions through the services, each with a reason and
audited: cancel a subscription (now or at period end), retry an open invoice now, mark one uncollectible (four
eyes above the approval limit), create a price (finance leads). The customer page (customers.admin, which may
not import this app) gains the customer's subscriptions and newest invoices from here."""

import uuid
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

import customers.admin  # noqa: F401 - registers CustomerAdmin, which this module extends
from accounts.models import User
from audit.approvals import approval_or_done
from config.admin import CappedCountPaginator, ReadOnlyAdminMixin
from config.admin.staff_forms import ReasonForm, submit_reason_form
from config.api.errors import ApplicationError
from customers.models import Customer
from gateways.base import GatewayError
from payments.money import CURRENCIES, format_amount, parse_major
from subscriptions import states
from subscriptions.models import INTERVALS, Invoice, InvoiceLine, Price, Subscription, SubscriptionStatusChange
from subscriptions.services import subscription_cancel
from subscriptions.staff import (
    MAX_INTERVAL_COUNT,
    MAX_TRIAL_DAYS,
    InvoiceNotOpen,
    invoice_mark_uncollectible,
    invoice_retry,
    price_create,
)
from subscriptions.states import InvoiceStatus

CANCEL_PERMISSION = "subscriptions.cancel_subscription"
RETRY_PERMISSION = "subscriptions.retry_invoice"
MARK_UNCOLLECTIBLE_PERMISSION = "subscriptions.mark_invoice_uncollectible"
CREATE_PRICE_PERMISSION = "subscriptions.create_price"
CUSTOMER_PAGE_ROWS = 50  # the newest subscriptions and invoices shown on a customer's page

MAX_MATCHES = 1000  # an exact search matches a few subscriptions; one customer's at most this many


class CancelForm(ReasonForm):
    at_period_end = forms.BooleanField(required=False, help_text="Keep it active until the period ends.")
    field_order = ("at_period_end", "reason")


def _new_form_token() -> str:
    return uuid.uuid4().hex


class PriceForm(forms.Form):
    """A new recurring price; the amount typed in major units (9.99 USD, 1000 JPY), converted exactly."""

    product_name = forms.CharField(max_length=255)
    unit_amount = forms.CharField(
        label="Amount", max_length=20, help_text="In the currency's major units: 9.99 for $9.99, 1000 for ¥1000."
    )
    currency = forms.ChoiceField(
        choices=[(code, code.upper()) for code, currency in sorted(CURRENCIES.items()) if currency.supported]
    )
    interval = forms.ChoiceField(choices=INTERVALS, initial="month")
    interval_count = forms.IntegerField(min_value=1, max_value=MAX_INTERVAL_COUNT, initial=1)
    trial_period_days = forms.IntegerField(min_value=0, max_value=MAX_TRIAL_DAYS, required=False)
    # One token per form shown: the gateway key, so a double submit makes one price.
    form_token = forms.RegexField(regex=r"^[0-9a-f]{32}$", widget=forms.HiddenInput, initial=_new_form_token)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        typed, currency = data.get("unit_amount"), data.get("currency")
        if typed is not None and currency:
            try:
                minor = parse_major(typed, currency)
            except ValueError as exc:
                self.add_error("unit_amount", str(exc))
            else:
                step = CURRENCIES[currency].step
                if minor % step:
                    self.add_error("unit_amount", f"{currency.upper()} amounts are multiples of {step} minor units.")
                else:
                    data["unit_amount_minor"] = minor
        return data


class StatusChangeInline(admin.TabularInline):
    model = SubscriptionStatusChange
    extra = 0
    can_delete = False
    fields = ("created_at", "from_status", "to_status", "source", "actor", "reason")
    readonly_fields = fields

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The history is part of the subscription's page: whoever may view the subscription sees it.
        return request.user.has_perm("subscriptions.view_subscription")

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

        def canceled(done: Subscription) -> tuple[str, int]:
            told = "at the end of its period" if done.cancel_at_period_end else "now"
            return f"Subscription {done.public_id} canceled {told}.", messages.SUCCESS

        submitted = submit_reason_form(
            self,
            request,
            form,
            back_to=change_url,
            run=lambda data: subscription_cancel(
                subscription=subscription,
                at_period_end=data["at_period_end"],
                source="admin",
                actor=cast(User, request.user),
                reason=data["reason"],
                remote_addr=request.META.get("REMOTE_ADDR"),
            ),
            done=canceled,
            failed=(ApplicationError, GatewayError),
            failed_hint="Nothing changed; try again.",
        )
        if submitted is not None:
            return submitted
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
    fields = (
        "public_id",
        "client",
        "subscription_display",
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
        "payment_display",
        "payment_intent_reference",
        "hosted_invoice_url",
        "gateway",
        "gateway_reference",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

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

    @admin.display(description="subscription")
    def subscription_display(self, obj: Invoice) -> str:
        subscription = obj.subscription
        if subscription is None:
            return "-"
        return format_html(
            '<a href="{}" id="invoice-subscription">{}</a> ({}, {})',
            reverse("admin:subscriptions_subscription_change", args=[subscription.pk]),
            subscription.public_id,
            subscription.status,
            subscription.price.reference,
        )

    @admin.display(description="payment")
    def payment_display(self, obj: Invoice) -> str:
        payment = obj.payment
        if payment is None:
            return "-"
        return format_html(
            '<a href="{}" id="invoice-payment">{}</a> ({}, {}{})',
            reverse("admin:payments_payment_change", args=[payment.pk]),
            payment.public_id,
            payment.status,
            format_amount(payment.amount, payment.currency),
            f", {payment.failure_code}" if payment.failure_code else "",
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Invoice | None:
        # the page shows its payment and its subscription (with its price): one query, not four
        queryset = self.get_queryset(request).select_related("payment", "subscription__price", "customer", "client")
        model = queryset.model
        field = model._meta.pk if from_field is None else model._meta.get_field(from_field)
        try:
            return queryset.get(**{field.name: field.to_python(object_id)})
        except (model.DoesNotExist, ValidationError, ValueError):
            return None

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/retry/",
                self.admin_site.admin_view(self.retry_view),
                name="subscriptions_invoice_retry",
            ),
            path(
                "<path:object_id>/mark_uncollectible/",
                self.admin_site.admin_view(self.mark_uncollectible_view),
                name="subscriptions_invoice_mark_uncollectible",
            ),
        ]
        return own + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        invoice = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if invoice is not None:
            is_open = invoice.status == InvoiceStatus.OPEN
            context["can_retry"] = is_open and request.user.has_perm(RETRY_PERMISSION)
            context["can_mark_uncollectible"] = is_open and request.user.has_perm(MARK_UNCOLLECTIBLE_PERMISSION)
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _staff_invoice(self, request: HttpRequest, object_id: str, permission: str) -> Invoice:
        invoice = self.get_object(request, object_id)
        if invoice is None or not self.has_view_permission(request, invoice):
            raise PermissionDenied
        if not request.user.has_perm(permission):
            raise PermissionDenied
        return invoice

    def _reason_page(self, request: HttpRequest, invoice: Invoice, form: ReasonForm, **page: str) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": invoice,
            "amount_remaining": format_amount(invoice.amount_remaining, invoice.currency),
            "form": form,
            **page,
        }
        return TemplateResponse(request, "admin/subscriptions/invoice/staff_action.html", context)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A reason, then one call into `invoice_retry` (audited there)."""
        invoice = self._staff_invoice(request, object_id, RETRY_PERMISSION)
        change_url = reverse("admin:subscriptions_invoice_change", args=[invoice.pk])
        if invoice.status != InvoiceStatus.OPEN:
            told = f"Invoice {invoice.public_id} is {invoice.status}: nothing to retry."
            self.message_user(request, told, messages.WARNING)
            return HttpResponseRedirect(change_url)
        form = ReasonForm(request.POST or None)

        def attempted(done: Invoice) -> tuple[str, int]:
            if done.status == InvoiceStatus.PAID:
                return f"Invoice {done.public_id} paid.", messages.SUCCESS
            told = f"declined ({done.failure_code})" if done.failure_code else "not paid"
            return f"Invoice {done.public_id}: the attempt was {told}.", messages.WARNING

        submitted = submit_reason_form(
            self,
            request,
            form,
            back_to=change_url,
            run=lambda data: invoice_retry(
                invoice=invoice,
                actor=cast(User, request.user),
                reason=data["reason"],
                remote_addr=request.META.get("REMOTE_ADDR"),
            ),
            done=attempted,
            refused=(InvoiceNotOpen,),
            failed=(ApplicationError, GatewayError),
        )
        if submitted is not None:
            return submitted
        return self._reason_page(
            request, invoice, form, title=f"Retry {invoice.public_id} now", submit="Attempt the payment now"
        )

    def mark_uncollectible_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A reason, then one call into `invoice_mark_uncollectible` (at once, or a request for four eyes)."""
        invoice = self._staff_invoice(request, object_id, MARK_UNCOLLECTIBLE_PERMISSION)
        change_url = reverse("admin:subscriptions_invoice_change", args=[invoice.pk])
        if invoice.status != InvoiceStatus.OPEN:
            self.message_user(request, f"Invoice {invoice.public_id} is {invoice.status} already.", messages.WARNING)
            return HttpResponseRedirect(change_url)
        form = ReasonForm(request.POST or None)
        submitted = submit_reason_form(
            self,
            request,
            form,
            back_to=change_url,
            run=lambda data: invoice_mark_uncollectible(
                invoice=invoice,
                actor=cast(User, request.user),
                reason=data["reason"],
                remote_addr=request.META.get("REMOTE_ADDR"),
            ),
            done=lambda done: approval_or_done(
                done, lambda invoice: f"Invoice {invoice.public_id} marked uncollectible."
            ),
            refused=(InvoiceNotOpen,),
            failed=(ApplicationError, GatewayError),
        )
        if submitted is not None:
            return submitted
        return self._reason_page(
            request, invoice, form, title=f"Mark {invoice.public_id} uncollectible", submit="Mark uncollectible"
        )


@admin.register(Price)
class PriceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("reference", "product", "unit_amount_display", "interval", "interval_count", "active")
    list_filter = ("active", "interval", "currency")
    list_select_related = ("product",)
    search_fields = ("=reference",)

    @admin.display(description="unit amount", ordering="unit_amount")
    def unit_amount_display(self, obj: Price) -> str:
        return format_amount(obj.unit_amount, obj.currency)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path("create/", self.admin_site.admin_view(self.create_view), name="subscriptions_price_create"),
        ]
        return own + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {**(extra_context or {}), "can_create_price": request.user.has_perm(CREATE_PRICE_PERMISSION)}
        return super().changelist_view(request, extra_context=context)

    def create_view(self, request: HttpRequest) -> HttpResponse:
        """The new price's form, then one call into `price_create` (at the gateway, mirrored, audited)."""
        if not self.has_view_permission(request) or not request.user.has_perm(CREATE_PRICE_PERMISSION):
            raise PermissionDenied
        form = PriceForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                price = price_create(
                    actor=cast(User, request.user),
                    product_name=data["product_name"],
                    unit_amount=data["unit_amount_minor"],
                    currency=data["currency"],
                    interval=data["interval"],
                    interval_count=data["interval_count"],
                    trial_period_days=data["trial_period_days"],
                    form_token=data["form_token"],
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
            except (ApplicationError, GatewayError) as exc:
                # A new token: the corrected form is a new request to the gateway, not a replay of this one.
                fresh = request.POST.copy()
                fresh["form_token"] = _new_form_token()
                form = PriceForm(fresh)
                form.is_valid()
                form.add_error(None, f"The gateway did not create it: {exc}.")
            else:
                shown = format_amount(price.unit_amount, price.currency)
                self.message_user(request, f"Price {price.reference} created ({shown}).", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:subscriptions_price_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Add a price",
            "form": form,
        }
        return TemplateResponse(request, "admin/subscriptions/price/create.html", context)


# --- the customer page: its subscriptions and newest invoices -------------------------------------------------
class NewestRowsFormSet(BaseInlineFormSet):
    """The newest rows only (the model's ordering): a customer's page costs the same with 5 or 5,000 invoices."""

    def get_queryset(self) -> QuerySet[Any]:
        if not hasattr(self, "_newest"):
            self._newest = super().get_queryset()[:CUSTOMER_PAGE_ROWS]
        return self._newest


class CustomerSubscriptionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Subscription
    fk_name = "customer"
    formset = NewestRowsFormSet
    extra = 0
    show_change_link = True
    verbose_name_plural = "Subscriptions"
    fields = ("public_id", "status", "price", "quantity", "current_period_end", "cancel_at_period_end", "created_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        return super().get_queryset(request).select_related("price")


class CustomerInvoiceInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Invoice
    fk_name = "customer"
    formset = NewestRowsFormSet
    extra = 0
    show_change_link = True
    verbose_name_plural = f"Invoices (newest {CUSTOMER_PAGE_ROWS})"
    fields = (
        "public_id",
        "status",
        "amount_due_display",
        "amount_paid_display",
        "subscription",
        "payment",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invoice]:
        return super().get_queryset(request).select_related("subscription", "payment")

    @admin.display(description="amount due")
    def amount_due_display(self, obj: Invoice) -> str:
        return format_amount(obj.amount_due, obj.currency)

    @admin.display(description="amount paid")
    def amount_paid_display(self, obj: Invoice) -> str:
        return format_amount(obj.amount_paid, obj.currency)


# customers.admin may not import this app (the import layers): its page gains these inlines from here.
_customer_admin = admin.site.get_model_admin(Customer)
# (On the registered instance, so other apps' additions compose; the stubs type `inlines` as a class variable.)
_customer_admin.inlines = (  # type: ignore[misc]
    *_customer_admin.inlines,
    CustomerSubscriptionInline,
    CustomerInvoiceInline,
)
