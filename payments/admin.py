"""Back office for payments: read-only, searchable, money formatted, history and events inline."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from audit.models import ApprovalRequest
from audit.selectors import payment_refundable_amount, refund_approval_limit, staff_action_list_for_payment
from audit.services import staff_override_request, staff_refund_request
from config.errors import ApplicationError
from payments.models import DeadLetter, Event, Payment, PaymentStatusChange
from payments.money import format_amount, format_decimal, get_currency, parse_major
from payments.states import PaymentStatus
from refunds.models import RefundReason


class ReadOnlyAdminMixin:
    """Money rows change only through services; the admin never edits them directly."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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


class StatusOverrideForm(forms.Form):
    to_status = forms.ChoiceField(choices=PaymentStatus.choices, label="New status")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Why (kept in the audit trail).")

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


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

    # --- staff actions: each view validates a form and makes one call into audit.services --------
    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="payments_payment_refund",
            ),
            path(
                "<path:object_id>/override-status/",
                self.admin_site.admin_view(self.override_status_view),
                name="payments_payment_override_status",
            ),
        ]
        return own + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        payment = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if payment is not None:
            context["can_refund"] = request.user.has_perm("refunds.add_refund")
            context["can_override"] = request.user.has_perm("payments.override_status")
            if request.user.has_perm("audit.view_staffaction"):
                context["staff_actions"] = staff_action_list_for_payment(payment=payment)
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _payment_for(self, request: HttpRequest, object_id: str, permission: str) -> Payment:
        payment = self.get_object(request, object_id)
        if payment is None or not self.has_view_permission(request, payment) or not request.user.has_perm(permission):
            raise PermissionDenied
        return payment

    def _done(self, request: HttpRequest, payment: Payment, outcome: object) -> HttpResponseRedirect:
        if isinstance(outcome, ApprovalRequest):
            self.message_user(
                request,
                f"Approval request {outcome.pk} created: another staff member must approve it.",
                messages.WARNING,
            )
        else:
            self.message_user(request, f"Refund {outcome} created.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:payments_payment_change", args=[payment.pk]))

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        payment = self._payment_for(request, object_id, "refunds.add_refund")
        remaining = payment_refundable_amount(payment=payment)
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
                return self._done(request, payment, outcome)
        limit = refund_approval_limit(currency=payment.currency)
        return self._action_page(
            request,
            payment,
            form,
            title=f"Refund {payment.public_id}",
            template="admin/payments/payment/refund.html",
            remaining=format_amount(max(remaining, 0), payment.currency),
            limit=format_amount(limit, payment.currency),
        )

    def override_status_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        payment = self._payment_for(request, object_id, "payments.override_status")
        form = StatusOverrideForm(request.POST or None, initial={"to_status": payment.status})
        if request.method == "POST" and form.is_valid():
            outcome = staff_override_request(
                payment=payment,
                to_status=form.cleaned_data["to_status"],
                reason=form.cleaned_data["reason"],
                actor=request.user,  # type: ignore[arg-type]
                remote_addr=request.META.get("REMOTE_ADDR"),
            )
            return self._done(request, payment, outcome)
        return self._action_page(
            request,
            payment,
            form,
            title=f"Override the status of {payment.public_id}",
            template="admin/payments/payment/override_status.html",
        )

    def _action_page(
        self, request: HttpRequest, payment: Payment, form: forms.Form, *, title: str, template: str, **extra: Any
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": payment,
            "title": title,
            "form": form,
            "amount": format_amount(payment.amount, payment.currency),
            "refunded": format_amount(payment.amount_refunded, payment.currency),
            **extra,
        }
        return TemplateResponse(request, template, context)

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
