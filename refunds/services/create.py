"""Creating refunds: on the API's or staff's request, and those made at the gateway outside the service.

A refund is created `pending` under the payment's row lock, counting pending refunds against what
is left, so concurrent refunds can never add up to more than was captured. The gateway call
happens afterwards, in a worker's batch run (`refunds.services.batch`), with the key `re_X:create`,
so a retry never refunds twice.
"""

import logging

from django.db import IntegrityError, transaction

from accounts.models import User
from config.rows import batched
from gateways.base import RefundResult
from payments import states as payment_states
from payments.errors import AmountTooLarge, PaymentUnexpectedState
from payments.idempotency import KeyClaim
from payments.locks import PaymentOf, lock_payment, lock_payment_of
from payments.models import ChangeSource
from payments.money import format_amount
from refunds.models import Refund
from refunds.saving import refund_insert
from refunds.selectors import refundable_amount, refundable_amount_and_new_id
from refunds.services.batch import refunds_trigger_submission
from refunds.services.status import refund_status_initial
from refunds.services.submit import refund_apply_gateway_refund

logger = logging.getLogger(__name__)


def refund_create(
    *,
    payment_id: int | PaymentOf,
    requested_by: User | None,
    amount: int | None = None,
    reason: str = "",
    metadata: dict[str, str] | None = None,
    idempotency_key: str = "",
    claim: KeyClaim[Refund] | None = None,
    source: str = ChangeSource.API,
) -> Refund:
    """Create a pending refund (the whole remaining amount by default) and submit it after commit.

    An API request passes its `claim`: the request's key is stored, answered, in the refund's own
    transaction (`KeyClaim.answer`), so the refund and its key commit once, together.

    `payment_id` may name the payment by its public id and client (`PaymentOf`, an API request's): it is then
    found by its lock, in the refund's transaction, with no read before.

    :raises Payment.DoesNotExist: (`PaymentOf`) no such payment for that client; nothing was written.
    :raises PaymentUnexpectedState: the payment is not `succeeded` or `partially_refunded`.
    :raises AmountTooLarge: more than what is left to refund, counting pending refunds.
    :raises KeyTaken: (with a claim) the key was used before; nothing was written.
    """
    if idempotency_key:
        if isinstance(payment_id, PaymentOf):
            raise TypeError("a service call's idempotency key goes with the payment's id")
        existing = Refund.objects.filter(payment_id=payment_id, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    with transaction.atomic(), batched():  # the refund's history row and event go in one statement
        locked = lock_payment_of(payment_id) if isinstance(payment_id, PaymentOf) else lock_payment(payment_id)
        if locked.status not in payment_states.REFUNDABLE:
            raise PaymentUnexpectedState(f"A payment in status {locked.status} cannot be refunded.")
        # With a claim, the refund's id is drawn with the sum: its INSERT then goes with its batch's rows.
        if claim is not None:
            remaining, drawn = refundable_amount_and_new_id(locked)
        else:
            remaining, drawn = refundable_amount(locked), None
        to_refund = remaining if amount is None else amount
        if to_refund <= 0 or to_refund > remaining:
            left = format_amount(max(remaining, 0), locked.currency)
            raise AmountTooLarge(f"amount exceeds what is left to refund ({remaining}, {left}).", param="amount")
        fields = {
            "payment": locked,
            "amount": to_refund,
            "currency": locked.currency,
            "reason": reason,
            "metadata": metadata or {},
            "requested_by": requested_by,
        }
        if claim is not None:  # the key is the request's, stored below with the answer: no duplicate can exist
            refund = refund_insert(Refund(id=drawn, **fields))
        else:
            try:
                with transaction.atomic():
                    refund = Refund.objects.create(**fields, idempotency_key=idempotency_key)
            except IntegrityError:
                return Refund.objects.get(payment=locked, idempotency_key=idempotency_key)
        refund_status_initial(refund, source=source, actor=requested_by)
        transaction.on_commit(refunds_trigger_submission, robust=True)  # a batch run submits it (`services.batch`)
        if claim is not None:
            claim.answer(refund)
    logger.info(
        "Refund created",
        extra={
            "refund": refund.public_id,
            "payment": locked.public_id,
            "amount": format_amount(to_refund, refund.currency),
        },
    )
    return refund


def refund_record_external(*, payment_id: int, result: RefundResult, source: str = ChangeSource.WEBHOOK) -> Refund:
    """Record a refund made at the gateway outside the service (the Stripe Dashboard) once, and apply its status.

    With the payment locked: the refund is created `pending` under its unique gateway reference (a
    second report finds it, and a concurrent insert ends in `IntegrityError`, so it exists once),
    then moved to the gateway's status; a succeeded refund counts in the payment's `amount_refunded`.

    :raises payment_states.InvalidTransition: it succeeded but the payment was never captured.
    """
    with transaction.atomic():
        payment = lock_payment(payment_id)
        refund = Refund.objects.filter(gateway_reference=result.reference).first()
        if refund is None:
            try:
                with transaction.atomic():
                    refund = Refund.objects.create(
                        payment=payment,
                        amount=result.amount,
                        currency=result.currency,
                        metadata=result.metadata,
                        gateway_reference=result.reference,
                        requested_by=None,
                    )
            except IntegrityError:
                refund = Refund.objects.get(gateway_reference=result.reference)
            else:
                refund_status_initial(refund, source=source, reason="made outside the service")
                logger.info(
                    "Refund made outside the service recorded",
                    extra={"refund": refund.public_id, "payment": payment.public_id, "reference": result.reference},
                )
        return refund_apply_gateway_refund(refund_id=refund.pk, result=result, source=source)
