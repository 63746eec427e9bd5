"""Back office for payments: read-only, searchable, money formatted, history and events on the page.

The full payment page (refunds, risk, webhooks beside the core) is composed in `backoffice.admin`.
"""

from typing import Any, ClassVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from accounts.models import User
from audit.admin import AuditedCsvExportMixin
from audit.models import ApprovalRequest
from audit.selectors import staff_action_list_for
from config.admin import CappedCountPaginator, FixedChoicesFilter, ReadOnlyAdminMixin
from config.encryption import email_index, ip_index
from events.selectors import event_list_for_subject
from payments.models import DeadLetter, Payment, PaymentStatusChange
from payments.money import CURRENCIES, format_amount, format_decimal
from payments.selectors import payment_is_stuck
from payments.services import payment_override_request, payment_retry_stuck
from payments.states import PaymentStatus


class CurrencyFilter(FixedChoicesFilter):
    title = "currency"
    parameter_name = "currency"
    options = tuple((code, code.upper()) for code, currency in sorted(CURRENCIES.items()) if currency.supported)


class GatewayFilter(FixedChoicesFilter):
    title = "gateway"
    parameter_name = "gateway"
    options = (("stripe", "Stripe"), ("simulator", "Simulator"))


# No permission of its own (no migration): the one finance_agent and finance_lead hold and auditor lacks.
RETRY_PERMISSION = "refunds.add_refund"


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


@admin.register(Payment)
class PaymentAdmin(AuditedCsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
        CurrencyFilter,
        GatewayFilter,
        "capture_method",
        ("created_at", admin.DateFieldListFilter),
    )
    # Exact, case-sensitive matches (get_search_results): "=field" would be iexact, UPPER(), no index. The e-mail
    # and IP are encrypted: get_search_results finds them through their blind indexes.
    search_fields = ("public_id", "gateway_reference", "customer_id", "order_id")
    # No date_hierarchy: its MIN/MAX and DISTINCT date_trunc scan every matching row at 1 M payments;
    # the created_at list filter covers the same need from the index.
    show_full_result_count = False  # no COUNT(*) over millions of rows
    paginator = CappedCountPaginator
    list_select_related = ("client",)
    ordering = ("-created_at", "-id")
    inlines: ClassVar["tuple[type[InlineModelAdmin[Any, Any]], ...]"] = (StatusChangeInline,)
    actions = ("export_csv",)
    csv_object_type = "payment"
    # No card data: the payment stores none, and nothing here reaches the gateway's method details.
    csv_columns = (
        ("id", "public_id"),
        ("created_at", "created_at"),
        ("status", "status"),
        ("amount_minor", "amount"),
        ("amount", "amount"),
        ("currency", "currency"),
        ("refunded_minor", "amount_refunded"),
        ("refunded", "amount_refunded"),
        ("customer_id", "customer_id"),
        ("order_id", "order_id"),
        ("gateway", "gateway"),
        ("gateway_reference", "gateway_reference"),
    )

    def csv_line(self, row: tuple[Any, ...]) -> list[Any]:
        public_id, created_at, status, amount, _, currency, refunded, _, *rest = row
        return [
            public_id,
            created_at.isoformat(),
            status,
            amount,
            format_decimal(amount, currency),
            currency,
            refunded,
            format_decimal(refunded, currency),
            *rest,
        ]

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
        ("Risk", {"fields": ("risk_score", "risk_level", "review_state", "review_reasons")}),
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
        "risk_score",
        "risk_level",
        "review_state",
        "review_reasons",
        "created_at",
        "updated_at",
    )

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        """Exact ids, an e-mail (any case) or an IP, each column on its own index (a bitmap OR), never a scan."""
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q()
        for field in self.search_fields:
            condition |= Q(**{field: term})
        # The e-mail and IP through their blind indexes (normalised: any case, any spelling of the address).
        condition |= Q(customer_email_index=email_index(term)) | Q(customer_ip_index=ip_index(term))
        return queryset.filter(condition), False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_staff and super().has_view_permission(request, obj)

    # --- staff actions: each view validates a form and makes one call into a service ------------
    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/override-status/",
                self.admin_site.admin_view(self.override_status_view),
                name="payments_payment_override_status",
            ),
            path(
                "<path:object_id>/retry/",
                self.admin_site.admin_view(self.retry_view),
                name="payments_payment_retry",
            ),
            self.csv_url("payments_payment_export_csv"),
        ]
        return own + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        payment = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if payment is not None:
            context.update(self.page_context(request, payment))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def page_context(self, request: HttpRequest, payment: Payment) -> dict[str, Any]:
        """What the payment page shows beside its fields; the back office's page adds the other apps' parts."""
        context: dict[str, Any] = {
            "can_override": request.user.has_perm("payments.override_status"),
            # Retrying reuses refunds.add_refund: finance_agent and finance_lead hold it, auditor does not.
            "can_retry": request.user.has_perm(RETRY_PERMISSION) and payment_is_stuck(payment),
            "payment_events": event_list_for_subject(subject_id=payment.public_id),
        }
        if request.user.has_perm("audit.view_staffaction"):
            context["staff_actions"] = staff_action_list_for(object_type="payment", object_id=payment.public_id)
        return context

    def payment_for(self, request: HttpRequest, object_id: str, permission: str) -> Payment:
        payment = self.get_object(request, object_id)
        if payment is None or not self.has_view_permission(request, payment) or not request.user.has_perm(permission):
            raise PermissionDenied
        return payment

    def done(self, request: HttpRequest, payment: Payment, outcome: object) -> HttpResponseRedirect:
        if isinstance(outcome, ApprovalRequest):
            self.message_user(
                request,
                f"Approval request {outcome.pk} created: another staff member must approve it.",
                messages.WARNING,
            )
        else:
            self.message_user(request, f"{outcome} created.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:payments_payment_change", args=[payment.pk]))

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST only: enqueue the payment's settle task again (the button on the payment page)."""
        payment = self.payment_for(request, object_id, RETRY_PERMISSION)
        change_url = reverse("admin:payments_payment_change", args=[payment.pk])
        if request.method != "POST":
            return HttpResponseRedirect(change_url)
        retried = payment_retry_stuck(
            payment_id=payment.pk, actor=cast(User, request.user), remote_addr=request.META.get("REMOTE_ADDR")
        )
        if retried:
            self.message_user(request, f"Retry of {payment.public_id} queued.", messages.SUCCESS)
        else:
            self.message_user(request, f"{payment.public_id} has no stuck operation to retry.", messages.WARNING)
        return HttpResponseRedirect(change_url)

    def override_status_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        payment = self.payment_for(request, object_id, "payments.override_status")
        form = StatusOverrideForm(request.POST or None, initial={"to_status": payment.status})
        if request.method == "POST" and form.is_valid():
            outcome = payment_override_request(
                payment=payment,
                to_status=form.cleaned_data["to_status"],
                reason=form.cleaned_data["reason"],
                actor=request.user,  # type: ignore[arg-type]
                remote_addr=request.META.get("REMOTE_ADDR"),
            )
            return self.done(request, payment, outcome)
        return self.action_page(
            request,
            payment,
            form,
            title=f"Override the status of {payment.public_id}",
            template="admin/payments/payment/override_status.html",
        )

    def action_page(
        self, request: HttpRequest, payment: Payment, form: forms.Form, *, title: str, template: str, **extra: Any
    ) -> TemplateResponse:
        """A staff action's form page about one payment (its amount and refunded amount in the header)."""
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


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Messages a consumer could not use (card numbers already masked), kept for inspection."""

    list_display = ("id", "source", "created_at", "error")
    list_filter = ("source", ("created_at", admin.DateFieldListFilter))
    search_fields = ("error",)
    readonly_fields = ("source", "created_at", "error", "headers", "body")
    show_full_result_count = False
