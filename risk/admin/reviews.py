"""The manual review queue (pending reviews, oldest first), every assessment, and the per-review decision page."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from config.admin import CappedCountPaginator
from config.api.errors import ApplicationError
from payments.models import Payment, ReviewState
from payments.money import format_amount
from risk.errors import ReviewNotPending
from risk.models import PaymentReview, RiskAssessment
from risk.selectors import (
    HISTORY_WINDOW,
    authorization_expiry,
    duration_text,
    review_for_decision,
    review_queue,
)
from risk.services import review_approve, review_reject

VIEW_PERMISSION = "risk.view_riskassessment"
REVIEW_PERMISSION = "risk.review_payment"


class Decision:
    APPROVE = "approve"
    APPROVE_CAPTURE = "approve_capture"
    REJECT = "reject"
    CHOICES = (
        (APPROVE, "Approve"),
        (APPROVE_CAPTURE, "Approve and capture now"),
        (REJECT, "Reject (cancel the payment)"),
    )


class ReviewDecisionForm(forms.Form):
    """The decision comes from the button pressed; the reason is kept in the audit trail and on the review."""

    decision = forms.ChoiceField(choices=Decision.CHOICES, error_messages={"required": "Choose a decision."})
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Why (kept in the audit trail).",
        error_messages={"required": "A reason is required."},
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


def can_view_reviews(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))


def can_decide(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(REVIEW_PERMISSION))


def payment_link(payment: Payment) -> SafeString:
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:payments_payment_change", args=[payment.pk]), payment.public_id
    )


def reasons_html(reasons: list[dict[str, Any]]) -> SafeString:
    if not reasons:
        return format_html("{}", "—")
    return format_html_join(
        "",
        '<div class="risk-reason">{} <span class="quiet">({}, {} pts)</span></div>',
        ((r.get("message", ""), r.get("code", ""), r.get("points", 0)) for r in reasons),
    )


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def history_text(assessment: Any) -> str:
    """`2 payments, 1 declined, 1 refund`: the customer's other payments at the same API client (30 days)."""
    return (
        f"{_counted(assessment.history_payments, 'payment')}, {assessment.history_declines} declined, "
        f"{_counted(assessment.history_refunds, 'refund')}"
    )


class AssessmentColumns:
    """Columns shared by the queue and the list of every assessment (the payment comes with select_related)."""

    @admin.display(description="payment")
    def payment_display(self, obj: RiskAssessment) -> SafeString:
        return payment_link(obj.payment)

    @admin.display(description="amount", ordering="payment__amount")
    def amount_display(self, obj: RiskAssessment) -> str:
        return format_amount(obj.payment.amount, obj.payment.currency)

    @admin.display(description="reasons")
    def reasons_display(self, obj: RiskAssessment) -> SafeString:
        return reasons_html(obj.reasons)

    @admin.display(description="status")
    def status_display(self, obj: RiskAssessment) -> str:
        return obj.payment.status

    @admin.display(description="review state")
    def review_state(self, obj: RiskAssessment) -> str:
        """The hold is the payment's (`Payment.review_state`)."""
        return obj.payment.get_review_state_display()


@admin.register(PaymentReview)
class PaymentReviewAdmin(AssessmentColumns, admin.ModelAdmin):
    """Pending reviews, oldest first: one annotated query per page (see `risk.selectors`)."""

    list_display = (
        "payment_display",
        "age_display",
        "amount_display",
        "reasons_display",
        "customer_display",
        "history_display",
        "status_display",
        "authorization_display",
    )
    list_display_links = None
    sortable_by = ("age_display", "amount_display")
    ordering = ("created_at", "id")
    list_per_page = 50
    show_full_result_count = False  # the queue has no filters: the count is the total
    actions = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[PaymentReview]:
        return review_queue()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {
            "title": "Review queue: payments held by the risk rules, oldest first",
            "is_nav_sidebar_enabled": False,  # the queue needs the page's width
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        return (*self.list_display, "decide_display") if can_decide(request) else self.list_display

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_view_reviews(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_view_reviews(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:assessment_id>/decide/", self.admin_site.admin_view(self.decide_view), name="risk_review_decide"
            ),
        ]
        return own + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A queue row's page is its decision page (or the read-only assessment for those who cannot decide)."""
        if not object_id.isdigit():
            raise Http404
        if can_decide(request):
            return HttpResponseRedirect(reverse("admin:risk_review_decide", args=[object_id]))
        return HttpResponseRedirect(reverse("admin:risk_riskassessment_change", args=[object_id]))

    # --- columns -------------------------------------------------------------------------------------
    @admin.display(description="age", ordering="created_at")
    def age_display(self, obj: PaymentReview) -> str:
        return duration_text(timezone.now() - obj.created_at)

    @admin.display(description="customer")
    def customer_display(self, obj: PaymentReview) -> SafeString:
        payment = obj.payment
        return format_html(
            '{}<br>{}<br>{}<br><span class="quiet">{}</span>',
            payment.customer_id,
            payment.customer_email or "no e-mail",
            payment.customer_ip or "no IP",
            payment.client.username,
        )

    @admin.display(description=f"last {HISTORY_WINDOW.days} days")
    def history_display(self, obj: PaymentReview) -> str:
        return history_text(obj)

    @admin.display(description="authorization expires")
    def authorization_display(self, obj: PaymentReview) -> SafeString:
        expiry = authorization_expiry(status=obj.payment.status, authorized_at=obj.authorized_at)  # type: ignore[attr-defined]
        if expiry.is_urgent:
            return format_html('<strong class="auth-urgent" style="color: var(--error-fg)">{}</strong>', expiry.text)
        return format_html("{}", expiry.text)

    @admin.display(description="decide")
    def decide_display(self, obj: PaymentReview) -> SafeString:
        url = reverse("admin:risk_review_decide", args=[obj.pk])
        return format_html('<a class="button decide-link" href="{}">Decide</a>', url)

    # --- the decision page ---------------------------------------------------------------------------
    def decide_view(self, request: HttpRequest, assessment_id: int) -> HttpResponse:
        """GET: the review with its reasons and history; POST: approve, approve and capture, or reject."""
        if not can_decide(request):
            raise PermissionDenied
        try:
            assessment = review_for_decision(assessment_id=assessment_id)
        except RiskAssessment.DoesNotExist as exc:
            raise Http404("No such review.") from exc
        form = ReviewDecisionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            return self._decide(request, assessment, form.cleaned_data["decision"], form.cleaned_data["reason"])
        payment = assessment.payment
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Review {payment.public_id}",
            "assessment": assessment,
            "payment": payment,
            "payment_link": payment_link(payment),
            "amount": format_amount(payment.amount, payment.currency),
            "age": duration_text(timezone.now() - assessment.created_at),
            "reasons": reasons_html(assessment.reasons),
            "history": history_text(assessment),
            "history_days": HISTORY_WINDOW.days,
            "expiry": authorization_expiry(status=payment.status, authorized_at=assessment.authorized_at),  # type: ignore[attr-defined]
            "is_pending": payment.review_state == ReviewState.PENDING,
            "form": form,
            "decisions": Decision.CHOICES,
        }
        return TemplateResponse(request, "admin/risk/paymentreview/decide.html", context)

    def _decide(self, request: HttpRequest, assessment: RiskAssessment, decision: str, reason: str) -> HttpResponse:
        payment = assessment.payment
        actor = request.user
        remote_addr = request.META.get("REMOTE_ADDR")
        queue_url = reverse("admin:risk_paymentreview_changelist")
        payment_url = reverse("admin:payments_payment_change", args=[payment.pk])
        try:
            if decision == Decision.REJECT:
                result = review_reject(payment_id=payment.pk, actor=actor, reason=reason, remote_addr=remote_addr)  # type: ignore[arg-type]
            else:
                result = review_approve(
                    payment_id=payment.pk,
                    actor=actor,  # type: ignore[arg-type]
                    reason=reason,
                    remote_addr=remote_addr,
                    capture=decision == Decision.APPROVE_CAPTURE,
                )
        except ReviewNotPending as exc:
            self.message_user(request, f"Payment {payment.public_id}: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(queue_url)
        except ApplicationError as exc:
            # The review is decided (it closes before any gateway call); only the capture or cancel failed.
            verb, operation = ("rejected", "cancel") if decision == Decision.REJECT else ("approved", "capture")
            self.message_user(
                request,
                f"Payment {payment.public_id} {verb}, but the {operation} failed: {exc.message} ({exc.code}).",
                messages.ERROR,
            )
            return HttpResponseRedirect(payment_url)
        if decision == Decision.REJECT:
            text = f"Payment {payment.public_id} rejected; the payment is {result.status}."
        elif decision == Decision.APPROVE_CAPTURE:
            captured = format_amount(result.amount_received, result.currency)
            text = f"Payment {payment.public_id} approved and captured ({captured}); the payment is {result.status}."
        else:
            text = f"Payment {payment.public_id} approved: the shop can capture it now."
        self.message_user(request, text, messages.SUCCESS)
        return HttpResponseRedirect(queue_url)


class ReviewStateFilter(admin.SimpleListFilter):
    """Fixed choices (no SELECT DISTINCT), "No review" included."""

    title = "review state"
    parameter_name = "review"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value or "none", label) for value, label in ReviewState.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(payment__review_state="" if value == "none" else value)


@admin.register(RiskAssessment)
class RiskAssessmentAdmin(AssessmentColumns, admin.ModelAdmin):
    """Every assessment, newest first, read-only: what the rules said and how the review ended."""

    list_display = (
        "payment_display",
        "created_at",
        "amount_display",
        "score",
        "level",
        "decision",
        "review_state",
        "reviewed_by",
        "reasons_display",
    )
    list_display_links = ("created_at",)  # the payment column links to the payment
    sortable_by = ("created_at",)  # on the index; other orders would sort every assessment
    list_filter = ("decision", "level", ReviewStateFilter, ("created_at", admin.DateFieldListFilter))
    show_facets = admin.ShowFacets.NEVER  # facet counts would scan every assessment
    list_select_related = ("payment", "reviewed_by")
    search_fields = ("payment__public_id",)
    search_help_text = "Exact payment id (pay_…)."
    show_full_result_count = False
    paginator = CappedCountPaginator
    ordering = ("-created_at", "-id")
    actions = None
    fields = (
        "payment_display",
        "amount_display",
        "status_display",
        "score",
        "level",
        "decision",
        "reasons_display",
        "settings_version",
        "card_fingerprint",
        "review_state",
        "reviewed_by",
        "reviewed_at",
        "review_note",
        "reminded_at",
        "created_at",
    )
    readonly_fields = fields

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        """An exact payment id on its unique index, never a scan."""
        term = search_term.strip()
        return (queryset.filter(payment__public_id=term), False) if term else (queryset, False)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_view_reviews(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = dict(extra_context or {})
        assessment = self.get_object(request, object_id)
        if assessment is not None and assessment.payment.review_state == ReviewState.PENDING and can_decide(request):
            context["decide_url"] = reverse("admin:risk_review_decide", args=[assessment.pk])
        return super().change_view(request, object_id, form_url, extra_context=context)
