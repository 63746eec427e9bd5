"""Back office for personal data: the customer page gains "Erase customer" (a reason, then four eyes) and
"Export" (the JSON download, audited); erasures are listed read-only.

The customer page is the customers app's; privacy sits above it, so it extends that admin (registered again,
as a subclass) instead of the customers app knowing about erasure.
"""

import json
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from accounts.models import User
from config.admin import ReadOnlyAdminMixin
from config.admin.staff_forms import ReasonForm
from customers.admin import CustomerAdmin
from customers.models import Customer
from privacy.models import CustomerErasure
from privacy.selectors import customer_is_erased
from privacy.staff import CustomerErased, customer_erase_request, customer_export_by_staff

ERASE_PERMISSION = "privacy.erase_customer"
EXPORT_PERMISSION = "privacy.export_customer"


class EraseForm(ReasonForm):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why (kept in the audit trail). Write the request's reference, not the customer's name or e-mail.",
    )


# What other apps added to the registered customer admin (subscriptions' inlines) is kept on the new one.
_registered_inlines = tuple(admin.site.get_model_admin(Customer).inlines)
admin.site.unregister(Customer)


@admin.register(Customer)
class PrivacyCustomerAdmin(CustomerAdmin):
    change_form_template = "admin/privacy/customer_change_form.html"
    inlines = _registered_inlines

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/erase/",
                self.admin_site.admin_view(self.erase_view),
                name="customers_customer_erase",
            ),
            path(
                "<path:object_id>/export/",
                self.admin_site.admin_view(self.export_view),
                name="customers_customer_export",
            ),
        ]
        return own + super().get_urls()

    def page_context(self, request: HttpRequest, customer: Customer) -> dict[str, Any]:
        context = super().page_context(request, customer)
        context["can_erase"] = request.user.has_perm(ERASE_PERMISSION) and not customer_is_erased(customer)
        context["can_export"] = request.user.has_perm(EXPORT_PERMISSION)
        return context

    def _customer(self, request: HttpRequest, object_id: str, permission: str) -> Customer:
        customer = self.get_object(request, object_id)
        if customer is None or not self.has_view_permission(request, customer):
            raise PermissionDenied
        if not request.user.has_perm(permission):
            raise PermissionDenied
        return customer

    def erase_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A reason, then an approval request: a second staff member's approval erases the customer."""
        customer = self._customer(request, object_id, ERASE_PERMISSION)
        change_url = reverse("admin:customers_customer_change", args=[customer.pk])
        form = EraseForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                approval = customer_erase_request(
                    customer=customer,
                    actor=cast(User, request.user),
                    reason=form.cleaned_data["reason"],
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
            except CustomerErased:
                self.message_user(request, f"Customer {customer.public_id} is erased already.", messages.WARNING)
                return HttpResponseRedirect(change_url)
            self.message_user(
                request,
                f"Erasure of {customer.public_id} requested (request {approval.pk}): another staff member must "
                "approve it.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": customer,
            "title": f"Erase customer {customer.public_id}",
            "form": form,
        }
        return TemplateResponse(request, "admin/privacy/erase.html", context)

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Everything held about the customer, as a JSON download (recorded in the staff log)."""
        customer = self._customer(request, object_id, EXPORT_PERMISSION)
        exported = customer_export_by_staff(
            customer=customer, actor=cast(User, request.user), remote_addr=request.META.get("REMOTE_ADDR")
        )
        response = HttpResponse(
            json.dumps(exported, indent=2, sort_keys=True, default=str), content_type="application/json"
        )
        response["Content-Disposition"] = f'attachment; filename="{customer.public_id}.json"'
        return response


@admin.register(CustomerErasure)
class CustomerErasureAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("customer", "erased_at", "source", "actor")
    list_select_related = ("customer", "actor")
    list_filter = ("source",)
    search_fields = ("=customer__public_id",)
    ordering = ("-erased_at", "-id")
    readonly_fields = ("customer", "actor", "source", "reason", "references", "counts", "erased_at")
