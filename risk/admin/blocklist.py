"""The blocklist: list, add (normalized and audited by `blocklist_add`), expire — never delete — and one-click
blocks from a payment's page."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from accounts.models import User
from gateways import get_gateway
from gateways.base import GatewayError
from payments.models import Payment
from payments.money import format_amount
from risk.models import BlockKind, BlocklistEntry
from risk.services import blocklist_add, blocklist_expire

ADD_PERMISSION = "risk.add_blocklistentry"
# The kinds a payment page offers, in button order, with the payment field each one blocks.
PAYMENT_BLOCKS: dict[str, str] = {
    BlockKind.EMAIL: "customer_email",
    BlockKind.IP: "customer_ip",
    BlockKind.CUSTOMER: "customer_id",
    BlockKind.CARD_FINGERPRINT: "payment_method",
}


def _reason(value: str) -> str:
    reason = value.strip()
    if not reason:
        raise forms.ValidationError("A reason is required.")
    return reason


def _future(value: Any) -> Any:
    if value is not None and value <= timezone.now():
        raise forms.ValidationError("Choose a time in the future (or leave it empty: until someone expires it).")
    return value


class BlockFromPaymentForm(forms.Form):
    """The value comes from the payment (server side); staff confirm it with a reason."""

    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Kept in the audit trail.",
        error_messages={"required": "A reason is required."},
    )
    expires_at = forms.DateTimeField(
        required=False, label="Expires at", help_text="YYYY-MM-DD HH:MM. Empty: until someone expires it."
    )

    def clean_reason(self) -> str:
        return _reason(self.cleaned_data["reason"])

    def clean_expires_at(self) -> Any:
        return _future(self.cleaned_data["expires_at"])


class BlocklistAddForm(BlockFromPaymentForm):
    """The add form: the value typed in, plus the reason and expiry of a block from a payment."""

    field_order = ["kind", "value", "client", "reason", "expires_at"]

    kind = forms.ChoiceField(choices=BlockKind.choices)
    value = forms.CharField(
        max_length=255,
        help_text="Stored normalized: e-mails and domains in lower case, an IP as its network (203.0.113.7/32).",
    )
    client = forms.ModelChoiceField(
        queryset=User.objects.exclude(api_role="").order_by("username"),
        required=False,
        label="API client",
        help_text="Customer ids belong to one shop: choose it. Empty: every shop.",
    )


class ExpireActionForm(ActionForm):
    reason = forms.CharField(required=False, label="Reason", widget=forms.TextInput(attrs={"size": 50}))


class ActiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        return queryset


def is_active(entry: BlocklistEntry) -> bool:
    return entry.expires_at is None or entry.expires_at > timezone.now()


@admin.register(BlocklistEntry)
class BlocklistEntryAdmin(admin.ModelAdmin):
    list_display = ("value", "kind", "client", "reason", "created_by", "created_at", "expires_at", "active_display")
    list_filter = ("kind", ActiveFilter)
    list_select_related = ("client", "created_by")
    search_fields = ("value", "reason")
    search_help_text = "Part of the value or of the reason."
    show_full_result_count = False
    ordering = ("-created_at", "-id")
    action_form = ExpireActionForm
    actions = ("expire_selected",)
    readonly_fields = ("kind", "value", "client", "reason", "created_by", "created_at", "expires_at")

    @admin.display(description="active", boolean=True)
    def active_display(self, entry: BlocklistEntry) -> bool:
        return is_active(entry)

    # Entries are added through `blocklist_add` (add_view below) and expired, never edited or deleted:
    # the change permission only allows the expire action.
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "from-payment/<int:payment_id>/<str:kind>/",
                self.admin_site.admin_view(self.block_from_payment_view),
                name="risk_blocklistentry_from_payment",
            ),
        ]
        return own + super().get_urls()

    @admin.action(description="Expire selected entries now (reason required)", permissions=["change"])
    def expire_selected(self, request: HttpRequest, queryset: QuerySet[BlocklistEntry]) -> None:
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(request, "Give a reason in the Reason field next to the action.", messages.ERROR)
            return
        expired = skipped = 0
        for entry_id in queryset.order_by("pk").values_list("pk", flat=True):
            done = blocklist_expire(
                entry_id=entry_id,
                actor=request.user,  # type: ignore[arg-type]
                reason=reason,
                remote_addr=request.META.get("REMOTE_ADDR"),
            )
            expired, skipped = (expired + 1, skipped) if done else (expired, skipped + 1)
        self.message_user(request, f"{expired} entries expired; {skipped} had already expired.", messages.SUCCESS)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None) -> Any:
        """Add through `blocklist_add`: the value is normalized, duplicates refused, the staff action recorded."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = BlocklistAddForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                entry = blocklist_add(
                    kind=data["kind"],
                    value=data["value"],
                    reason=data["reason"],
                    actor=request.user,  # type: ignore[arg-type]
                    client=data["client"],
                    expires_at=data["expires_at"],
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
            except ValueError as exc:
                form.add_error("value", str(exc))
            else:
                self.message_user(request, f"Blocked {entry}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:risk_blocklistentry_changelist"))
        return self._form_page(request, form, title="Add a blocklist entry", submit="Add to the blocklist")

    def block_from_payment_view(self, request: HttpRequest, payment_id: int, kind: str) -> HttpResponse:
        """Block the payment's e-mail, IP, customer (at its API client) or card, after a confirmation with a reason."""
        if not request.user.has_perm(ADD_PERMISSION):
            raise PermissionDenied
        if kind not in PAYMENT_BLOCKS:
            raise Http404("Unknown kind.")
        payment = Payment.objects.select_related("client").filter(pk=payment_id).first()
        if payment is None:
            raise Http404("No such payment.")
        payment_url = reverse("admin:payments_payment_change", args=[payment.pk])
        value, problem = self._value_from_payment(payment, kind)
        if problem:
            self.message_user(request, problem, messages.ERROR)
            return HttpResponseRedirect(payment_url)
        client = payment.client if kind == BlockKind.CUSTOMER else None
        form = BlockFromPaymentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                entry = blocklist_add(
                    kind=kind,
                    value=value,
                    reason=form.cleaned_data["reason"],
                    actor=request.user,  # type: ignore[arg-type]
                    client=client,
                    expires_at=form.cleaned_data["expires_at"],
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                scope = f" at {client.username}" if client else ""
                self.message_user(request, f"Blocked {entry}{scope}.", messages.SUCCESS)
                return HttpResponseRedirect(payment_url)
        label = BlockKind(kind).label
        return self._form_page(
            request,
            form,
            title=f"Block the {label.lower()} of {payment.public_id}",
            submit=f"Block this {label.lower()}",
            payment=payment,
            payment_url=payment_url,
            amount=format_amount(payment.amount, payment.currency),
            block_kind=label,
            block_value=value,
            block_client=client,
        )

    @staticmethod
    def _value_from_payment(payment: Payment, kind: str) -> tuple[str, str]:
        """(value, "") or ("", why it cannot be blocked). A card's fingerprint comes from the gateway (no lock held)."""
        if kind != BlockKind.CARD_FINGERPRINT:
            value = str(getattr(payment, PAYMENT_BLOCKS[kind]) or "")
            return (value, "") if value else ("", f"{payment.public_id} has no {BlockKind(kind).label.lower()}.")
        if not payment.payment_method:
            return "", f"{payment.public_id} has no payment method: there is no card to block."
        try:
            fingerprint = get_gateway(payment.gateway).card_fingerprint(payment_method=payment.payment_method)
        except GatewayError as exc:
            return "", f"The gateway did not give the card's fingerprint: {exc.message or type(exc).__name__}."
        if not fingerprint:
            return "", f"The gateway gives no fingerprint for {payment.payment_method}: the card cannot be blocked."
        return fingerprint, ""

    def _form_page(self, request: HttpRequest, form: forms.Form, *, title: str, submit: str, **extra: Any) -> Any:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "form": form,
            "submit_label": submit,
            **extra,
        }
        return TemplateResponse(request, "admin/risk/blocklistentry/block_form.html", context)
