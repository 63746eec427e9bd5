"""What a payment's admin page shows of the risk app: its assessment, and the one-click block buttons."""

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from payments.models import Payment, ReviewState
from risk.admin.blocklist import ADD_PERMISSION, PAYMENT_BLOCKS
from risk.admin.reviews import VIEW_PERMISSION, can_decide, reasons_html
from risk.models import BlockKind, RiskAssessment

BUTTON_LABELS: dict[str, str] = {
    BlockKind.EMAIL: "Block e-mail",
    BlockKind.IP: "Block IP",
    BlockKind.CUSTOMER: "Block customer",
    BlockKind.CARD_FINGERPRINT: "Block card",
}


def payment_risk_context(request: HttpRequest, payment: Payment) -> dict[str, Any]:
    """`risk_panel`/`risk_assessment` (reasons as HTML, a decide link) and `block_buttons`, as the user may see them."""
    context: dict[str, Any] = {}
    user = request.user
    if user.has_perm(VIEW_PERMISSION):
        assessment = RiskAssessment.objects.select_related("reviewed_by").filter(payment_id=payment.pk).first()
        context["risk_panel"] = True
        context["risk_assessment"] = assessment
        if assessment is not None:
            context["risk_reasons"] = reasons_html(assessment.reasons)
            if payment.review_state == ReviewState.PENDING and can_decide(request):
                context["risk_decide_url"] = reverse("admin:risk_review_decide", args=[assessment.pk])
    if user.has_perm(ADD_PERMISSION):
        context["block_buttons"] = [
            {
                "kind": kind,
                "label": BUTTON_LABELS[kind],
                "url": reverse("admin:risk_blocklistentry_from_payment", args=[payment.pk, kind]),
            }
            for kind, field in PAYMENT_BLOCKS.items()
            if getattr(payment, field)
        ]
    return context
