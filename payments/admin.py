"""Back office for payments: read-only, searchable, money formatted, history and events inline."""

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from audit.models import ApprovalRequest
from audit.selectors import payment_refundable_amount, refund_approval_limit, staff_action_list_for_payment
from audit.services import payment_retry_stuck, staff_action_record, staff_override_request, staff_refund_request
from config.errors import ApplicationError
from payments.models import DeadLetter, Event, Payment, PaymentStatusChange
from payments.money import CURRENCIES, format_amount, format_decimal, get_currency, parse_major
from payments.recovery import payment_is_stuck
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


# --- streamed CSV export ------------------------------------------------------------------------
CSV_CHUNK_SIZE = 2000
# Cells that a spreadsheet would read as a formula (CSV injection) get a leading apostrophe.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A write-only pseudo-buffer: csv.writer writes a row, we hand the line straight to the response."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return f"'{value}"
    return value


def csv_stream(
    header: Iterable[str], rows: Iterable[tuple[Any, ...]], to_line: Callable[[tuple[Any, ...]], list[Any]]
) -> Iterator[str]:
    """Yield CSV lines one at a time: memory stays constant whatever the number of rows."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_cell(cell) for cell in to_line(row)])


def changelist_filters(request: HttpRequest) -> dict[str, str]:
    """The changelist's filters and search, as the staff member saw them (kept in the audit trail)."""
    return {key: str(value) for key, value in request.GET.items() if key not in ("o", "p")}


class CsvExportMixin:
    """A changelist button and an admin action exporting the filtered rows as a streamed CSV.

    Subclasses define `csv_columns` (header, values_list lookup) and `csv_line` (row -> cells).
    The audit row records the filters only: counting would cost a full scan at millions of rows.
    """

    csv_object_type: str
    csv_columns: tuple[tuple[str, str], ...]

    def csv_line(self, row: tuple[Any, ...]) -> list[Any]:
        raise NotImplementedError

    def csv_response(self, request: HttpRequest, queryset: QuerySet, *, after: dict[str, Any]) -> StreamingHttpResponse:
        staff_action_record(
            actor=request.user,  # type: ignore[arg-type]
            action="export_csv",
            object_type=self.csv_object_type,
            object_id="-",
            after=after,
            remote_addr=request.META.get("REMOTE_ADDR"),
        )
        rows = queryset.values_list(*(lookup for _, lookup in self.csv_columns)).iterator(chunk_size=CSV_CHUNK_SIZE)
        response = StreamingHttpResponse(
            csv_stream((name for name, _ in self.csv_columns), rows, self.csv_line), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="{self.csv_object_type}s.csv"'
        return response

    def export_csv_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """The changelist button: export exactly what the changelist shows, with its filters and search."""
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        changelist: ChangeList = self.get_changelist_instance(request)  # type: ignore[attr-defined]
        queryset = changelist.get_queryset(request)
        return self.csv_response(request, queryset, after={"filters": changelist_filters(request)})

    @admin.action(description="Export selected rows as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> StreamingHttpResponse:
        after: dict[str, Any] = {"filters": changelist_filters(request)}
        if request.POST.get("select_across") != "1":
            after["rows"] = len(request.POST.getlist(ACTION_CHECKBOX_NAME))
        return self.csv_response(request, queryset, after=after)

    def csv_url(self, name: str) -> URLPattern:
        return path("export-csv/", self.admin_site.admin_view(self.export_csv_view), name=name)  # type: ignore[attr-defined]


# --- fast changelists on millions of rows ---------------------------------------------------------
COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows (a LIMITed subquery): an exact COUNT(*) of 1 M rows costs a full scan.

    Past the cap the changelist says "10000" and pages stop there; filters narrow it down.
    """

    @property
    def count(self) -> int:
        if "_capped_count" not in self.__dict__:
            rows: Any = self.object_list  # a QuerySet in the admin
            self.__dict__["_capped_count"] = rows.values("pk")[:COUNT_CAP].count()
        return self.__dict__["_capped_count"]


class FixedChoicesFilter(admin.SimpleListFilter):
    """A filter whose choices are known in advance: no SELECT DISTINCT over the whole table."""

    options: tuple[tuple[str, str], ...] = ()

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return self.options

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset


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
class PaymentAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
    # Exact, case-sensitive matches (get_search_results): "=field" would be iexact, UPPER(), no index.
    search_fields = ("public_id", "gateway_reference", "customer_id", "order_id", "customer_email")
    # No date_hierarchy: its MIN/MAX and DISTINCT date_trunc scan every matching row at 1 M payments;
    # the created_at list filter covers the same need from the index.
    show_full_result_count = False  # no COUNT(*) over millions of rows
    paginator = CappedCountPaginator
    list_select_related = ("client",)
    ordering = ("-created_at", "-id")
    inlines = (StatusChangeInline, EventInline)
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

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        """Exact ids only, each column on its own index (a bitmap OR), never a scan."""
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q()
        for field in self.search_fields:
            condition |= Q(**{field: term})
        # Emails as typed or lower-cased (on the index); an iexact would scan. Mixed-case stored ones need exact typing.
        condition |= Q(customer_email=term.lower())
        return queryset.filter(condition), False

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
            context["can_refund"] = request.user.has_perm("refunds.add_refund")
            context["can_override"] = request.user.has_perm("payments.override_status")
            # Retrying reuses refunds.add_refund: finance_agent and finance_lead hold it, auditor does not.
            context["can_retry"] = request.user.has_perm(RETRY_PERMISSION) and payment_is_stuck(payment)
            if request.user.has_perm("audit.view_staffaction"):
                context["staff_actions"] = staff_action_list_for_payment(payment=payment)
            # The risk admin imports this module, so it is imported here, once both are loaded.
            from payments.risk.admin.payment_page import payment_risk_context

            context.update(payment_risk_context(request, payment))
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

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST only: enqueue the payment's settle task again (the button on the payment page)."""
        payment = self._payment_for(request, object_id, RETRY_PERMISSION)
        change_url = reverse("admin:payments_payment_change", args=[payment.pk])
        if request.method != "POST":
            return HttpResponseRedirect(change_url)
        retried = payment_retry_stuck(
            payment_id=payment.pk, actor=request.user, remote_addr=request.META.get("REMOTE_ADDR")
        )
        if retried:
            self.message_user(request, f"Retry of {payment.public_id} queued.", messages.SUCCESS)
        else:
            self.message_user(request, f"{payment.public_id} has no stuck operation to retry.", messages.WARNING)
        return HttpResponseRedirect(change_url)

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
    paginator = CappedCountPaginator
    ordering = ("-sequence",)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Messages a consumer could not use (card numbers already masked), kept for inspection."""

    list_display = ("id", "source", "created_at", "error")
    list_filter = ("source", ("created_at", admin.DateFieldListFilter))
    search_fields = ("error",)
    readonly_fields = ("source", "created_at", "error", "headers", "body")
    show_full_result_count = False
