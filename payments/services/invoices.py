"""The payment of an invoice's charge: the gateway's billing engine made the intent, this service keeps it a payment.

Every paid (or attempted) invoice has a `pay_` payment, so refunds, disputes, reconciliation and the back
office treat recurring money like one-off money. The subscriptions app calls `payment_record_for_invoice` with
the intent it read at the gateway (after `invoice.paid` / `invoice.payment_failed`, or its own create): the
payment is inserted once per intent (the gateway reference is unique), with its `payment.initiated` event,
then moved to the intent's status through the state machine, like any payment a webhook settles.
"""

import logging

from django.db import IntegrityError, transaction

from accounts.models import User
from gateways import get_gateway
from gateways.base import IntentResult
from payments.locks import lock_payment
from payments.models import CaptureMethod, ChangeSource, Payment
from payments.saving import payment_update
from payments.services.operations import payment_apply_intent
from payments.services.status import payment_status_initial
from payments.states import PaymentStatus

TERMINAL = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELED, PaymentStatus.REFUNDED,
                      PaymentStatus.PARTIALLY_REFUNDED})  # fmt: skip

logger = logging.getLogger(__name__)


def payment_record_for_invoice(
    *,
    client: User,
    customer_id: str,
    intent: IntentResult,
    invoice_id: str,
    source: str = ChangeSource.WEBHOOK,
    final: bool = False,
) -> Payment:
    """The payment charging invoice `invoice_id` (our `in_…`) through `intent`: created once, then as the intent says.

    Repeating the call (a duplicate or late webhook, a retry) changes nothing the payment has not seen: the
    same row is found by the intent's reference, and news older than its status is ignored (stale).

    The billing engine retries a declined invoice with the same intent (dunning, as Stripe does): a declined
    attempt keeps the payment open, with the decline's code and message, so a later attempt that succeeds
    makes it `succeeded`. With `final` (the invoice will not be attempted again: uncollectible, void) a
    declined attempt fails the payment.
    """
    payment = Payment.objects.filter(gateway_reference=intent.reference).first()
    if payment is None:
        payment = _insert(client=client, customer_id=customer_id, intent=intent, invoice_id=invoice_id, source=source)
    declined = intent.status == "requires_payment_method" and bool(intent.failure_code)
    if declined and not final:
        return _record_attempt(payment.pk, intent)
    return payment_apply_intent(payment_id=payment.pk, intent=intent, source=source)


def _record_attempt(payment_id: int, intent: IntentResult) -> Payment:
    """A declined attempt the engine will retry: its code and message on the payment, whose status stays open."""
    with transaction.atomic():
        payment = lock_payment(payment_id)
        if payment.status in TERMINAL or payment.failure_code == intent.failure_code:
            return payment
        return payment_update(payment, failure_code=intent.failure_code, failure_message=intent.failure_message[:500])


def _insert(*, client: User, customer_id: str, intent: IntentResult, invoice_id: str, source: str) -> Payment:
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                client=client,
                status=PaymentStatus.REQUIRES_CONFIRMATION
                if intent.payment_method
                else PaymentStatus.REQUIRES_PAYMENT_METHOD,
                amount=intent.amount,
                currency=intent.currency,
                capture_method=intent.capture_method or CaptureMethod.AUTOMATIC,
                customer_id=customer_id,
                payment_method=intent.payment_method,
                gateway=get_gateway().name,
                gateway_reference=intent.reference,
                invoice=invoice_id,
                off_session=True,  # the billing engine charges the saved card with no customer present
                metadata={"invoice": invoice_id},
            )
            payment_status_initial(payment, source=source)
    except IntegrityError:  # a concurrent delivery inserted it first
        return Payment.objects.get(gateway_reference=intent.reference)
    logger.info("Invoice payment recorded", extra={"payment": payment.public_id, "invoice": invoice_id})
    return payment
