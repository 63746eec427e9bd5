"""Changes other apps report to a payment: a refund that succeeded, a dispute the bank opened, what disputes hold."""

import logging

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from payments.locks import lock_payment
from payments.models import Payment
from payments.rendering import render_payment_for_event
from payments.saving import payment_update
from payments.services.status import payment_event_record, payment_status_change
from payments.states import PaymentStatus

logger = logging.getLogger(__name__)
S = PaymentStatus


def payment_add_refunded(
    *, payment: Payment, amount: int, source: str, actor: User | None = None, reason: str = ""
) -> Payment:
    """Count a succeeded refund on a payment the caller has locked (inside its transaction).

    The status becomes `partially_refunded` or `refunded`, with history and a `payment.refunded` event.

    :raises states.InvalidTransition: the payment was never captured.
    """
    refunded = payment.amount_refunded + amount
    target = S.REFUNDED if refunded >= payment.amount_received else S.PARTIALLY_REFUNDED
    return payment_status_change(payment, target, source=source, actor=actor, reason=reason, amount_refunded=refunded)


def payment_flag_dispute(*, payment_id: int, dispute_reference: str, reason: str, amount: int, currency: str) -> bool:
    """Flag the payment as disputed and write a `payment.dispute_opened` event, once per dispute.

    The status does not change (a dispute is not a refund); the flag is for the back office.
    Returns False when this dispute was already recorded.
    """
    with transaction.atomic():
        payment = lock_payment(payment_id)
        if payment.dispute_reference == dispute_reference:
            return False
        payment_update(
            payment, disputed_at=timezone.now(), dispute_reason=reason[:64], dispute_reference=dispute_reference
        )
        dispute = {"id": dispute_reference, "reason": reason or None, "amount": amount, "currency": currency}
        data = {**render_payment_for_event(payment), "dispute": dispute}
        payment_event_record(payment=payment, type="payment.dispute_opened", data=data)
    logger.warning("Payment disputed", extra={"payment": payment.public_id, "dispute": dispute_reference})
    return True


def payment_dispute_amounts_set(*, payment_id: int, amount_disputed: int, amount_dispute_held: int) -> Payment:
    """Set what the payment's disputes hold of it, under its row lock (call inside the dispute's transaction).

    `amount_disputed` is shown on the payment; `amount_dispute_held` is what refunds may not take (money the
    gateway will not refund while a chargeback is open, or lost). The status does not change; the dispute's own
    events tell the change. Returns the payment (saved only when a figure changed).
    """
    with transaction.atomic():
        payment = lock_payment(payment_id)
        if (payment.amount_disputed, payment.amount_dispute_held) != (amount_disputed, amount_dispute_held):
            payment_update(payment, amount_disputed=amount_disputed, amount_dispute_held=amount_dispute_held)
    return payment
