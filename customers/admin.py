"""Back office for customers: a changelist fast at millions of rows and a customer page with its saved methods,
payments and refunds. Staff may detach a method (with a reason, audited, through the service) and never see or
add card data: a method shows only its brand, last 4 digits, expiry and status, and nothing here can create one.
"""

from typing import Any, cast

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from accounts.models import User
from audit.models import StaffAction
from config.admin import CappedCountPaginator, ReadOnlyAdminMixin
from config.admin.staff_forms import ReasonForm
from config.encryption import email_index
from customers.models import Customer, CustomerGatewayToken, PaymentMethod, PaymentMethodStatus
from customers.services import payment_method_detach
from gateways.base import GatewayError
from payments.errors import GatewayTimeoutError, GatewayUnavailableError
from payments.models import Payment
from payments.money import format_amount

DETACH_PERMISSION = "customers.detach_paymentmethod"
PAGE_ROWS = 50  # the newest payments and refunds shown on a customer's page
MAX_MATCHES = 1000  # an exact search matches a few customers; a shared e-mail at most this many


class DetachForm(ReasonForm):
    pass


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("public_id", "customer_id", "client", "email", "default_payment_method", "created_at", "deleted_at")
    list_filter = (("created_at", admin.DateFieldListFilter), ("deleted_at", admin.EmptyFieldListFilter))
    # Exact matches only (get_search_results), each on its own index: never a scan at 1 M customers. The e-mail
    # is encrypted: it is found through its blind index (`email_index`), whatever its case.
    search_fields = ("public_id", "customer_id", "email_index")
    show_full_result_count = False  # no COUNT(*) over millions of rows
    paginator = CappedCountPaginator
    list_select_related = ("client", "default_payment_method")
    ordering = ("-created_at", "-id")
    fieldsets = (
        (None, {"fields": ("public_id", "customer_id", "client", "default_payment_method", "gateway_references")}),
        ("Contact", {"fields": ("email", "name", "metadata")}),
        ("Times", {"fields": ("created_at", "updated_at", "deleted_at")}),
    )
    readonly_fields = (
        "public_id",
        "customer_id",
        "client",
        "default_payment_method",
        "gateway_references",
        "email",
        "name",
        "metadata",
        "created_at",
        "updated_at",
        "deleted_at",
    )

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        """Our id, the storefront's id, an e-mail (any case: its blind index) or a gateway customer id, exactly."""
        term = search_term.strip()
        if not term:
            return queryset, False
        # One UNION of index lookups, read first: an OR across the columns (and the tokens' subquery) made
        # PostgreSQL scan the table, 270 ms a search at 1 M customers (bench/customer_admin_bench.py).
        by_column = [
            Customer.objects.filter(public_id=term),
            Customer.objects.filter(customer_id=term),
            Customer.objects.filter(email_index=email_index(term)),
        ]
        matches = (
            by_column[0]
            .values_list("pk", flat=True)
            .union(
                *(rows.values_list("pk", flat=True) for rows in by_column[1:]),
                CustomerGatewayToken.objects.filter(reference=term).values_list("customer_id", flat=True),
            )
        )
        return queryset.filter(pk__in=list(matches[:MAX_MATCHES])), False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_staff and super().has_view_permission(request, obj)

    @admin.display(description="gateway customer IDs")
    def gateway_references(self, obj: Customer) -> str:
        tokens = obj.gateway_tokens.order_by("gateway").values_list("gateway", "reference")
        return ", ".join(f"{gateway}: {reference}" for gateway, reference in tokens) or "-"

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/detach/<str:method_id>/",
                self.admin_site.admin_view(self.detach_view),
                name="customers_customer_detach",
            )
        ]
        return own + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        customer = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if customer is not None:
            context.update(self.page_context(request, customer))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def page_context(self, request: HttpRequest, customer: Customer) -> dict[str, Any]:
        """The saved methods (safe details only), the newest payments of this client's customer_id with their risk
        score, level and review (the customer's risk history), and their refunds."""
        methods: list[dict[str, Any]] = [
            {**row, "is_default": row["pk"] == customer.default_payment_method_id}
            for row in PaymentMethod.objects.filter(customer=customer)
            .order_by("status", "-created_at", "-id")
            .values("pk", "public_id", "brand", "last4", "exp_month", "exp_year", "funding", "status", "created_at")
        ]
        payments = Payment.objects.filter(client_id=customer.client_id, customer_id=customer.customer_id).order_by(
            "-created_at", "-id"
        )
        payment_rows = [
            {**row, "amount_display": format_amount(row["amount"], row["currency"])}
            for row in payments.values(
                "pk",
                "public_id",
                "status",
                "amount",
                "currency",
                "risk_score",
                "risk_level",
                "review_state",
                "created_at",
            )[:PAGE_ROWS]
        ]
        # The refunds through the payments' reverse relation (the refunds app sits beside this one, not below).
        refunds = (
            payments.filter(refunds__isnull=False)
            .order_by("-refunds__created_at", "-refunds__id")
            .values(
                "public_id",
                "refunds__public_id",
                "refunds__status",
                "refunds__amount",
                "refunds__currency",
                "refunds__created_at",
            )[:PAGE_ROWS]
        )
        refund_rows = [
            {
                "payment": row["public_id"],
                "public_id": row["refunds__public_id"],
                "status": row["refunds__status"],
                "amount_display": format_amount(row["refunds__amount"], row["refunds__currency"]),
                "created_at": row["refunds__created_at"],
            }
            for row in refunds
        ]
        context: dict[str, Any] = {
            "saved_methods": methods,
            "customer_payments": payment_rows,
            "customer_refunds": refund_rows,
            "can_detach": request.user.has_perm(DETACH_PERMISSION),
        }
        if request.user.has_perm("audit.view_staffaction"):
            context["staff_actions"] = list(
                StaffAction.objects.filter(
                    object_type="payment_method", object_id__in=[method["public_id"] for method in methods]
                )
                .select_related("actor")
                .order_by("-created_at", "-id")[:PAGE_ROWS]
            )
        return context

    def detach_view(self, request: HttpRequest, object_id: str, method_id: str) -> HttpResponse:
        """A reason, then one call into `payment_method_detach` (audited there, with the change)."""
        customer = self.get_object(request, object_id)
        if customer is None or not self.has_view_permission(request, customer):
            raise PermissionDenied
        if not request.user.has_perm(DETACH_PERMISSION):
            raise PermissionDenied
        method = PaymentMethod.objects.filter(customer=customer, public_id=method_id).first()
        if method is None:
            raise PermissionDenied
        change_url = reverse("admin:customers_customer_change", args=[customer.pk])
        if method.status != PaymentMethodStatus.ACTIVE:
            self.message_user(request, f"Payment method {method.public_id} is already detached.", messages.WARNING)
            return HttpResponseRedirect(change_url)
        form = DetachForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                payment_method_detach(
                    method=method,
                    actor=cast(User, request.user),
                    reason=form.cleaned_data["reason"],
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
            except (GatewayTimeoutError, GatewayUnavailableError, GatewayError) as exc:
                form.add_error(None, f"The gateway did not detach it: {exc}. Nothing changed; try again.")
            else:
                self.message_user(request, f"Payment method {method.public_id} detached.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": customer,
            "title": f"Detach {method.public_id} ({method.brand} •••• {method.last4})",
            "form": form,
            "method": method,
        }
        return TemplateResponse(request, "admin/customers/customer/detach.html", context)


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Saved methods: their safe details only (there is nothing else), searchable by ids."""

    list_display = ("public_id", "customer", "brand", "last4", "exp_month", "exp_year", "status", "created_at")
    list_filter = ("status", "brand")
    search_fields = ("=public_id", "=gateway_reference", "=customer__public_id")
    list_select_related = ("customer",)
    show_full_result_count = False
    paginator = CappedCountPaginator
    ordering = ("-created_at", "-id")
    readonly_fields = (
        "public_id",
        "customer",
        "gateway",
        "gateway_reference",
        "type",
        "brand",
        "last4",
        "exp_month",
        "exp_year",
        "funding",
        "country",
        "status",
        "detached_at",
        "created_at",
        "updated_at",
    )
    exclude = ("fingerprint",)
