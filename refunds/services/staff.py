"""Staff's refunds in the back office: within the approval limit at once, above it on a second person's approval."""

import logging

from django.db import transaction

from accounts.models import User
from audit.approvals import ApprovalOutcome
from audit.models import ApprovalRequest
from audit.services import approval_request_create, staff_action_record, staff_retry_record
from payments.errors import AmountTooLarge
from payments.locks import lock_payment
from payments.models import ChangeSource, Payment
from payments.money import format_amount
from refunds import states
from refunds.locks import lock_refund
from refunds.models import Refund
from refunds.saving import refund_save
from refunds.selectors import refund_approval_limit, refundable_amount
from refunds.services.create import refund_create
from refunds.services.submit import SUBMIT_TASK

logger = logging.getLogger(__name__)
REFUND_KIND = "refund"


def staff_refund_request(
    *,
    payment: Payment,
    amount: int,
    refund_reason: str,
    reason: str,
    actor: User,
    remote_addr: str | None = None,
) -> Refund | ApprovalRequest:
    """Refund now when the amount is within the currency's approval limit; otherwise ask a second person.

    :raises ValueError: the reason is empty.
    :raises AmountTooLarge: more than what is left to refund.
    :raises PaymentUnexpectedState: the payment cannot be refunded.
    """
    if not reason.strip():
        raise ValueError("A staff refund needs a reason.")
    if amount > refund_approval_limit(currency=payment.currency):
        remaining = refundable_amount(payment)
        if amount > remaining:
            left = format_amount(max(remaining, 0), payment.currency)
            raise AmountTooLarge(f"amount exceeds what is left to refund ({remaining}, {left}).", param="amount")
        return approval_request_create(
            kind=REFUND_KIND,
            object_type="payment",
            object_id=payment.public_id,
            params={"amount": amount, "currency": payment.currency, "refund_reason": refund_reason},
            reason=reason,
            requested_by=actor,
            remote_addr=remote_addr,
        )
    with transaction.atomic():
        refund = refund_create(
            payment_id=payment.pk, requested_by=actor, amount=amount, reason=refund_reason, source=ChangeSource.ADMIN
        )
        staff_action_record(
            actor=actor,
            action="refund",
            object_type="payment",
            object_id=payment.public_id,
            reason=reason,
            before={"amount_refunded": payment.amount_refunded},
            after={"refund": refund.public_id, "amount": amount, "currency": refund.currency, "status": refund.status},
            remote_addr=remote_addr,
        )
    return refund


def run_approved_refund(request: ApprovalRequest, approver: User) -> ApprovalOutcome:
    """The approval kind `refund`: create the refund the request asked for (requested by its requester).

    :raises AmountTooLarge: the request's currency is not the payment's, or too little is left to refund.
    """
    payment = Payment.objects.get(public_id=request.object_id)
    if request.params["currency"] != payment.currency:
        raise AmountTooLarge("The request's currency is not the payment's.", param="currency")
    refund = refund_create(
        payment_id=payment.pk,
        requested_by=request.requested_by,
        amount=request.params["amount"],
        reason=request.params.get("refund_reason", ""),
        source=ChangeSource.ADMIN,
    )
    return ApprovalOutcome(
        result=f"refund {refund.public_id} created ({format_amount(refund.amount, refund.currency)})",
        before={"amount_refunded": payment.amount_refunded},
        after={"refund": refund.public_id, "amount": refund.amount, "currency": refund.currency},
    )


def summarize_refund_request(params: dict) -> str:
    return f"refund {format_amount(params['amount'], params['currency'])}"


def refund_retry_stuck(*, refund_id: int, actor: User, remote_addr: str | None) -> bool:
    """Clear `needs_attention` on a pending refund, record the staff action, enqueue `submit_refund` on commit.

    Submitting again reuses the key `re_X:create`, so the gateway never refunds twice. Returns False,
    doing nothing, when the refund is no longer pending.
    """
    payment_id = Refund.objects.values_list("payment_id", flat=True).get(pk=refund_id)
    with transaction.atomic():
        refund = lock_refund(refund_id, payment=lock_payment(payment_id))
        if refund.status not in states.SUBMITTABLE:
            return False
        before = {"needs_attention": refund.needs_attention, "attempts": refund.attempts}
        refund.needs_attention = False
        refund_save(refund, ["needs_attention"])
        staff_retry_record(
            actor=actor,
            object_type="refund",
            object_id=refund.public_id,
            before=before,
            task=SUBMIT_TASK,
            remote_addr=remote_addr,
            refund_id=refund_id,
        )
    return True
