"""Staff's writes to a payment: the four-eyes status override, retrying a stuck operation, flagging for staff."""

import logging

from django.db import transaction

from accounts.models import User
from audit.approvals import ApprovalOutcome
from audit.models import ApprovalRequest
from audit.services import approval_request_create, staff_retry_record
from payments.locks import lock_payment
from payments.models import Payment
from payments.saving import payment_update
from payments.selectors import payment_is_stuck
from payments.services.operations import SETTLE_TASK
from payments.services.status import payment_status_override
from payments.states import PaymentStatus

logger = logging.getLogger(__name__)
OVERRIDE_KIND = "status_override"


def payment_override_request(
    *, payment: Payment, to_status: str, reason: str, actor: User, remote_addr: str | None = None
) -> ApprovalRequest:
    """Ask for a status override; it runs only once another staff member approves it.

    :raises ValueError: the reason is empty.
    """
    return approval_request_create(
        kind=OVERRIDE_KIND,
        object_type="payment",
        object_id=payment.public_id,
        params={"from_status": payment.status, "to_status": to_status},
        reason=reason,
        requested_by=actor,
        remote_addr=remote_addr,
    )


def payment_override_status(*, payment_id: int, to_status: str, actor: User, reason: str) -> Payment:
    """Set a payment's status outside the state machine: the one audited exception of the API contract.

    Runs only once a second staff member has approved the request. Writes status, history (source
    admin) and a `payment.status_overridden` event together, ends an open review hold and forgets a
    recorded gateway operation.

    :raises ValueError: the status is unknown or the reason is empty.
    """
    if to_status not in PaymentStatus.values:
        raise ValueError(f"{to_status!r} is not a payment status")
    if not reason.strip():
        raise ValueError("A status override needs a reason.")
    with transaction.atomic():
        payment = lock_payment(payment_id)
        from_status = payment.status
        payment_status_override(payment, to_status, actor=actor, reason=reason)
    logger.warning(
        "Payment status overridden",
        extra={"payment": payment.public_id, "from": from_status, "to": to_status, "actor": actor.pk},
    )
    return payment


def run_approved_override(request: ApprovalRequest, approver: User) -> ApprovalOutcome:
    """The approval kind `status_override`: run the override the request asked for."""
    payment = Payment.objects.get(public_id=request.object_id)
    before = {"status": payment.status}
    payment = payment_override_status(
        payment_id=payment.pk, to_status=request.params["to_status"], actor=approver, reason=request.reason
    )
    return ApprovalOutcome(
        result=f"status {before['status']} -> {payment.status}", before=before, after={"status": payment.status}
    )


def payment_mark_needs_attention(*, payment_id: int, error: str) -> None:
    """Retries ran out while settling: flag the payment for staff; its recorded operation stays."""
    with transaction.atomic():
        payment = lock_payment(payment_id)
        payment_update(payment, needs_attention=True, last_error=error[:2000])
    logger.error("Payment needs attention: settling ran out of retries", extra={"payment_id": payment_id})


def payment_retry_stuck(*, payment_id: int, actor: User, remote_addr: str | None) -> bool:
    """Clear `needs_attention`, record the staff action, and enqueue `settle_payment` after commit.

    The task (not `payment_settle` inline) keeps gateway I/O out of the request and keeps the
    retry/backoff bound: if retries run out again the payment is flagged again. Returns False, doing
    nothing, when the payment has no operation to finish.
    """
    with transaction.atomic():
        payment = lock_payment(payment_id)
        if not payment_is_stuck(payment):
            return False
        before = {"needs_attention": payment.needs_attention, "pending_operation": payment.pending_operation}
        payment_update(payment, needs_attention=False)
        staff_retry_record(
            actor=actor,
            object_type="payment",
            object_id=payment.public_id,
            before=before,
            task=SETTLE_TASK,
            remote_addr=remote_addr,
            payment_id=payment_id,
        )
    return True
