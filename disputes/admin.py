"""The back office's dispute desk: the queue (open disputes first, the soonest due first, with the time left),
a read-only dispute page with its payment, the customer's history, the payment's risk and the status history,
and the staff actions through `disputes.staff`: evidence saved as a draft or submitted to the bank (once), and
accepting a dispute (four eyes above the refund approval limit).

The changelist stays fast at a million rows: exact searches on indexed ids, no full COUNT(*), filters with
fixed choices, one query for the rows (their payments joined). The risk app sits beside this one in the
import layers: the page shows the core's risk fields of the payment (score, level, reasons it was held for),
and a `risk_assessment` (with `risk_reasons`) when the page is composed higher up (`page_context`).
"""

from datetime import datetime, timedelta
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Sum, Value, When
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.models import User
from audit.approvals import approval_or_done
from config.admin import CappedCountPaginator, FixedChoicesFilter, ReadOnlyAdminMixin
from config.admin.staff_forms import ReasonForm, submit_reason_form
from config.api.errors import ApplicationError
from disputes import states
from disputes.deadlines import awaiting_evidence
from disputes.errors import DisputeUnexpectedState
from disputes.models import Dispute, DisputeStatusChange
from disputes.staff import dispute_accept_request, dispute_evidence_save, evidence_closed_reason, evidence_state
from disputes.states import DisputeStatus
from gateways.base import GatewayError
from gateways.disputes import (
    DISPUTE_REASONS,
    EVIDENCE_FILE_FIELDS,
    EVIDENCE_FILE_LIMIT,
    EVIDENCE_FILE_TYPES,
    EVIDENCE_TEXT_FIELDS,
    EVIDENCE_TEXT_LIMIT,
    EvidenceFile,
)
from payments.models import Payment
from payments.money import format_amount

SUBMIT_PERMISSION = "disputes.submit_evidence"
ACCEPT_PERMISSION = "disputes.accept_dispute"
GATEWAY_NAMES = ("stripe", "simulator")  # the leading column of the (gateway_name, gateway_reference) index
MAX_MATCHES = 1000  # an exact search matches one dispute; a payment's at most this many
OTHER_DISPUTES_SHOWN = 10
# What a file's first bytes say it is: the browser's content type is whatever the file's name suggests.
FILE_SIGNATURES = ((b"%PDF-", "application/pdf"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
DEADLINES = {"24h": timedelta(hours=24), "48h": timedelta(hours=48), "7d": timedelta(days=7)}
# Not submitted yet (evidence_submitted_at, the submission count and a status under review all say so).
NOT_SUBMITTED = (
    Q(status__in=states.OPEN)
    & ~Q(status__in=states.UNDER_REVIEW)
    & Q(evidence_submitted_at__isnull=True, submission_count=0)
)
QUEUE_RANK = Case(
    When(NOT_SUBMITTED, then=Value(0)),
    When(status__in=states.OPEN, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)
SHORT_TEXT_FIELDS = frozenset(
    {
        "customer_email_address",
        "customer_name",
        "customer_purchase_ip",
        "duplicate_charge_id",
        "service_date",
        "shipping_carrier",
        "shipping_date",
        "shipping_tracking_number",
    }
)


def time_left(dispute: Dispute, now: datetime) -> str:
    """'3 d 4 h', '5 h 12 min', '40 min', 'overdue' (evidence not submitted past its due date), or '—' (closed,
    submitted, or no due date: nothing to do against the clock)."""
    if dispute.status in states.TERMINAL or evidence_state(dispute) == "submitted" or dispute.evidence_due_by is None:
        return "—"
    left = dispute.evidence_due_by - now
    if left <= timedelta(0):
        return "overdue"
    hours, rest = divmod(left.seconds, 3600)
    if left.days:
        return f"{left.days} d {hours} h"
    if hours:
        return f"{hours} h {rest // 60} min"
    return f"{max(rest // 60, 1)} min"


# --- forms ---------------------------------------------------------------------------------------------------
def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _sniffed_type(head: bytes) -> str:
    return next((kind for signature, kind in FILE_SIGNATURES if head.startswith(signature)), "")


class EvidenceForm(forms.Form):
    """Stripe's evidence text fields (prefilled with what is saved) and one file per file field."""

    def __init__(self, *args: Any, saved: dict[str, str], read_only: bool = False, **kwargs: Any) -> None:
        kwargs["initial"] = {**saved}
        super().__init__(*args, **kwargs)
        self.saved = saved
        for name in EVIDENCE_TEXT_FIELDS:
            widget = forms.TextInput if name in SHORT_TEXT_FIELDS else forms.Textarea(attrs={"rows": 2, "cols": 80})
            self.fields[name] = forms.CharField(
                label=_label(name), required=False, max_length=EVIDENCE_TEXT_LIMIT, widget=widget, disabled=read_only
            )
        if not read_only:
            accept = ",".join(EVIDENCE_FILE_TYPES)
            for name in EVIDENCE_FILE_FIELDS:
                self.fields[f"file_{name}"] = forms.FileField(
                    label=_label(name),
                    required=False,
                    widget=forms.ClearableFileInput(attrs={"accept": accept}),
                    help_text="PDF, JPEG or PNG, at most 5 MB.",
                )

    def text_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in EVIDENCE_TEXT_FIELDS]

    def file_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith("file_")]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        total = sum(len(str(data.get(name) or "")) for name in EVIDENCE_TEXT_FIELDS)
        if total > EVIDENCE_TEXT_LIMIT:
            raise ValidationError(
                f"The text fields together may hold at most {EVIDENCE_TEXT_LIMIT:,} characters ({total:,} typed)."
            )
        files: list[EvidenceFile] = []
        for name in EVIDENCE_FILE_FIELDS:
            upload = cast(UploadedFile | None, data.get(f"file_{name}"))
            if not upload:
                continue
            if not 0 < (upload.size or 0) <= EVIDENCE_FILE_LIMIT:
                self.add_error(f"file_{name}", "The file is empty or larger than 5 MB.")
                continue
            content = upload.read()
            kind = _sniffed_type(content[:8])
            if kind not in EVIDENCE_FILE_TYPES:
                self.add_error(f"file_{name}", "Only PDF, JPEG and PNG files are accepted as evidence.")
                continue
            files.append(EvidenceFile(field=name, filename=upload.name or name, content_type=kind, content=content))
        data["files"] = files
        return data

    def changed_evidence(self) -> dict[str, str]:
        """The text fields that differ from what is saved ("" clears a saved one)."""
        data = self.cleaned_data
        return {name: data[name] for name in EVIDENCE_TEXT_FIELDS if (data[name] or "") != (self.saved.get(name) or "")}


# --- filters -------------------------------------------------------------------------------------------------
class StatusFilter(FixedChoicesFilter):
    title = "status"
    parameter_name = "status"
    options = tuple(DisputeStatus.choices)


class ReasonFilter(FixedChoicesFilter):
    title = "reason"
    parameter_name = "reason"
    options = tuple((reason, _label(reason)) for reason in DISPUTE_REASONS)


class DeadlineFilter(admin.SimpleListFilter):
    """Evidence not submitted and due within a window, or overdue (on the (status, evidence_due_by) index)."""

    title = "deadline"
    parameter_name = "deadline"

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return (
            ("24h", "Due within 24 h"),
            ("48h", "Due within 48 h"),
            ("7d", "Due within 7 days"),
            ("overdue", "Overdue"),
        )

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value, now = self.value(), timezone.now()
        if value in DEADLINES:
            return queryset.filter(awaiting_evidence(now=now), evidence_due_by__lte=now + DEADLINES[value])
        if value == "overdue":
            return queryset.filter(NOT_SUBMITTED, evidence_due_by__lte=now)
        return queryset


# --- the page's reads ----------------------------------------------------------------------------------------
def customer_history(dispute: Dispute) -> dict[str, Any] | None:
    """The customer's other payments (count and amounts per currency) and other disputes: two queries."""
    payment = dispute.payment
    if not payment.customer_id:
        return None
    others = Payment.objects.filter(client_id=payment.client_id, customer_id=payment.customer_id).exclude(pk=payment.pk)
    totals = [
        {
            "currency": row["currency"],
            "count": row["count"],
            "amount": format_amount(row["amount"] or 0, row["currency"]),
            "received": format_amount(row["received"] or 0, row["currency"]),
            "refunded": format_amount(row["refunded"] or 0, row["currency"]),
            "disputed": row["disputed"],
        }
        for row in others.order_by()
        .values("currency")
        .annotate(
            count=Count("id"),
            amount=Sum("amount"),
            received=Sum("amount_received"),
            refunded=Sum("amount_refunded"),
            disputed=Count("id", filter=Q(disputed_at__isnull=False)),
        )
        .order_by("currency")
    ]
    disputes = list(
        Dispute.objects.filter(client_id=payment.client_id, payment__customer_id=payment.customer_id)
        .exclude(pk=dispute.pk)
        .select_related("payment")
        .order_by("-created_at", "-id")[: OTHER_DISPUTES_SHOWN + 1]
    )
    return {
        "customer_id": payment.customer_id,
        "payments_count": sum(row["count"] for row in totals),
        "totals": totals,
        "disputes": [
            {
                "dispute": other,
                "amount": format_amount(other.amount, other.currency),
                "url": reverse("admin:disputes_dispute_change", args=[other.pk]),
            }
            for other in disputes[:OTHER_DISPUTES_SHOWN]
        ],
        "more_disputes": len(disputes) > OTHER_DISPUTES_SHOWN,
    }


def payment_summary(payment: Payment) -> dict[str, Any]:
    return {
        "payment": payment,
        "url": reverse("admin:payments_payment_change", args=[payment.pk]),
        "amount": format_amount(payment.amount, payment.currency),
        "received": format_amount(payment.amount_received, payment.currency),
        "refunded": format_amount(payment.amount_refunded, payment.currency),
        "disputed": format_amount(payment.amount_disputed, payment.currency),
    }


# --- the admin -----------------------------------------------------------------------------------------------
class StatusChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DisputeStatusChange
    extra = 0
    can_delete = False
    verbose_name_plural = "Status history"
    fields = ("created_at", "from_status", "to_status", "source", "actor", "reason")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DisputeStatusChange]:
        return super().get_queryset(request).select_related("actor")


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "payment_link",
        "amount_display",
        "reason",
        "status",
        "evidence_due_by",
        "time_left_display",
        "evidence_display",
    )
    list_display_links = ("public_id",)
    list_filter = (StatusFilter, ReasonFilter, DeadlineFilter)
    # Exact ids, each on its index (get_search_results): dp_ ours, du_ the gateway's, pay_ the payment's.
    search_fields = ("public_id", "gateway_reference", "payment__public_id", "charge_reference")
    search_help_text = "An exact id: dp_… (dispute), du_… (the gateway's dispute), pay_… (payment) or ch_… (charge)."
    show_full_result_count = False  # no COUNT(*) over millions of rows
    paginator = CappedCountPaginator
    list_select_related = ("payment",)
    list_per_page = 50
    inlines = (StatusChangeInline,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "public_id",
                    "status",
                    "reason",
                    "amount_display",
                    "evidence_due_by",
                    "time_left_display",
                    "evidence_display",
                    "evidence_submitted_at",
                    "submission_count",
                )
            },
        ),
        ("Funds", {"fields": ("funds_withdrawn", "funds_reinstated", "is_charge_refundable")}),
        (
            "Gateway",
            {"fields": ("gateway_name", "gateway_reference", "charge_reference", "gateway_created_at", "client")},
        ),
        ("Times", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = (
        "public_id",
        "status",
        "reason",
        "amount_display",
        "evidence_due_by",
        "time_left_display",
        "evidence_display",
        "evidence_submitted_at",
        "submission_count",
        "funds_withdrawn",
        "funds_reinstated",
        "is_charge_refundable",
        "gateway_name",
        "gateway_reference",
        "charge_reference",
        "gateway_created_at",
        "client",
        "created_at",
        "updated_at",
    )

    # --- the queue --------------------------------------------------------------------------------------
    def get_ordering(self, request: HttpRequest) -> list[Any]:
        """Awaiting evidence first, then under review, then closed; the soonest due first within each."""
        return [QUEUE_RANK.asc(), F("evidence_due_by").asc(nulls_last=True), "-id"]

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        """One exact id, on its index; never a LIKE scan."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.startswith("pay_"):
            matches = queryset.filter(payment__public_id=term)
        elif term.startswith("ch_"):
            matches = queryset.filter(charge_reference=term)
        elif term.startswith("dp_"):  # ours, or (some payment methods) the gateway's
            matches = queryset.filter(Q(public_id=term) | Q(gateway_name__in=GATEWAY_NAMES, gateway_reference=term))
        else:
            matches = queryset.filter(gateway_name__in=GATEWAY_NAMES, gateway_reference=term)
        pks = list(matches.order_by().values_list("pk", flat=True)[:MAX_MATCHES])
        return queryset.filter(pk__in=pks), False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_staff and super().has_view_permission(request, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        self._now = timezone.now()  # one clock for every row's time left
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description="payment", ordering="payment__public_id")
    def payment_link(self, obj: Dispute) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:payments_payment_change", args=[obj.payment_id]),
            obj.payment.public_id,
        )

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Dispute) -> str:
        return format_amount(obj.amount, obj.currency)

    @admin.display(description="time left")
    def time_left_display(self, obj: Dispute) -> str:
        shown = time_left(obj, getattr(self, "_now", None) or timezone.now())
        if shown == "overdue":
            return format_html('<strong class="dispute-overdue" style="color:#ba2121">{}</strong>', shown)
        return shown

    @admin.display(description="evidence")
    def evidence_display(self, obj: Dispute) -> str:
        return evidence_state(obj)

    # --- the dispute's page -----------------------------------------------------------------------------------
    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Dispute | None:
        queryset = self.get_queryset(request).select_related("payment", "client")
        try:
            return queryset.get(pk=int(object_id))
        except (Dispute.DoesNotExist, ValueError):
            return None

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/evidence/",
                self.admin_site.admin_view(self.evidence_view),
                name="disputes_dispute_evidence",
            ),
            path(
                "<path:object_id>/accept/",
                self.admin_site.admin_view(self.accept_view),
                name="disputes_dispute_accept",
            ),
        ]
        return own + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._now = timezone.now()
        dispute = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if dispute is not None:
            context.update(self.page_context(request, dispute))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def page_context(self, request: HttpRequest, dispute: Dispute) -> dict[str, Any]:
        """What the page shows beside the dispute; a page composed higher up adds `risk_assessment`."""
        closed = evidence_closed_reason(dispute)
        may_submit = request.user.has_perm(SUBMIT_PERMISSION)
        payment = dispute.payment
        return {
            "payment_summary": payment_summary(payment),
            "customer_history": customer_history(dispute),
            "payment_risk": {
                "score": payment.risk_score,
                "level": payment.risk_level,
                "review_state": payment.get_review_state_display() if payment.review_state else "",
                "reasons": list(payment.review_reasons or []),
            },
            "evidence_closed": closed,
            "can_submit_evidence": may_submit and not closed,
            "evidence_form": EvidenceForm(saved=dict(dispute.evidence), read_only=bool(closed) or not may_submit),
            "evidence_files": list(dispute.evidence_files.all()),
            "evidence_state": evidence_state(dispute),
            "can_accept": request.user.has_perm(ACCEPT_PERMISSION) and dispute.status not in states.TERMINAL,
        }

    def _staff_dispute(self, request: HttpRequest, object_id: str, permission: str) -> Dispute:
        dispute = self.get_object(request, object_id)
        if dispute is None or not self.has_view_permission(request, dispute):
            raise PermissionDenied
        if not request.user.has_perm(permission):
            raise PermissionDenied
        return dispute

    def evidence_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: "Save draft" or "Submit to the bank"; each one call into `dispute_evidence_save`."""
        dispute = self._staff_dispute(request, object_id, SUBMIT_PERMISSION)
        change_url = reverse("admin:disputes_dispute_change", args=[dispute.pk])
        if request.method != "POST":
            return HttpResponseRedirect(change_url)
        closed = evidence_closed_reason(dispute)
        if closed:
            self.message_user(request, closed, messages.ERROR)
            return HttpResponseRedirect(change_url)
        submit = "_submit" in request.POST
        form = EvidenceForm(request.POST, request.FILES, saved=dict(dispute.evidence))
        if form.is_valid():
            changed, files = form.changed_evidence(), form.cleaned_data["files"]
            if not submit and not changed and not files:
                self.message_user(request, "Nothing changed: no draft saved.", messages.INFO)
                return HttpResponseRedirect(change_url)
            try:
                done = dispute_evidence_save(
                    dispute=dispute,
                    evidence=changed,
                    files=files,
                    submit=submit,
                    actor=cast(User, request.user),
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
            except DisputeUnexpectedState as exc:
                self.message_user(request, f"The gateway refused the evidence: {exc.message}", messages.ERROR)
                return HttpResponseRedirect(change_url)
            except (ApplicationError, GatewayError) as exc:
                form.add_error(None, f"The gateway did not take the evidence: {exc}. Nothing was saved; try again.")
            else:
                if submit:
                    told = f"Evidence of {done.public_id} submitted to the bank."
                else:
                    told = f"Evidence draft of {done.public_id} saved."
                self.message_user(request, told, messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": dispute,
            "title": f"Evidence of {dispute.public_id}",
            "evidence_form": form,
            "can_submit_evidence": True,
        }
        return TemplateResponse(request, "admin/disputes/dispute/evidence.html", context)

    def accept_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A reason, then one call into `dispute_accept_request` (at once, or a request for four eyes)."""
        dispute = self._staff_dispute(request, object_id, ACCEPT_PERMISSION)
        change_url = reverse("admin:disputes_dispute_change", args=[dispute.pk])
        if dispute.status in states.TERMINAL:
            self.message_user(request, f"Dispute {dispute.public_id} is closed already.", messages.WARNING)
            return HttpResponseRedirect(change_url)
        form = ReasonForm(request.POST or None)
        submitted = submit_reason_form(
            self,
            request,
            form,
            back_to=change_url,
            run=lambda data: dispute_accept_request(
                dispute=dispute,
                actor=cast(User, request.user),
                reason=data["reason"],
                remote_addr=request.META.get("REMOTE_ADDR"),
            ),
            done=lambda done: approval_or_done(
                done, lambda accepted: f"Dispute {accepted.public_id} accepted: {accepted.status}."
            ),
            refused=(DisputeUnexpectedState,),
            failed=(ApplicationError, GatewayError),
        )
        if submitted is not None:
            return submitted
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": dispute,
            "amount": format_amount(dispute.amount, dispute.currency),
            "title": f"Accept {dispute.public_id} (close it as lost)",
            "form": form,
        }
        return TemplateResponse(request, "admin/disputes/dispute/accept.html", context)
