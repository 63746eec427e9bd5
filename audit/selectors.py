"""Reads for the back office: approval limits, what is left to refund, a payment's staff actions."""

from django.conf import settings
from django.db.models import Q

from audit.models import ApprovalRequest, StaffAction
from payments.models import Payment
from refunds.services import refundable_amount


def refund_approval_limit(*, currency: str) -> int:
    """The largest staff refund (minor units) that runs without a second person's approval."""
    limits: dict[str, int] = settings.BACKOFFICE_REFUND_APPROVAL_LIMIT
    return limits.get(currency.lower(), limits["default"])


def payment_refundable_amount(*, payment: Payment) -> int:
    """What is left to refund on a payment (received less succeeded and pending refunds)."""
    return refundable_amount(payment)


def staff_action_list_for_payment(*, payment: Payment, limit: int = 50) -> list[StaffAction]:
    """The newest staff actions on a payment, including the decisions on its approval requests (2 queries)."""
    request_ids = [
        str(pk)
        for pk in ApprovalRequest.objects.filter(object_type="payment", object_id=payment.public_id).values_list(
            "pk", flat=True
        )
    ]
    query = Q(object_type="payment", object_id=payment.public_id)
    if request_ids:
        query |= Q(object_type="approval_request", object_id__in=request_ids)
    return list(StaffAction.objects.filter(query).select_related("actor").order_by("-id")[:limit])
