"""What each Stripe event type means for our payments and refunds.

Handlers run inside the transaction of `webhooks.services.webhook_event_process`, read the event's
own object (no re-fetch from Stripe) and call the payments and refunds services, which own every
status change. Each lock is taken the same way as everywhere: payment first, then refund. A handler
locks the payment itself before reading the status it compares with, so "did this event move
anything?" is answered under the same lock as the move.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateways.base import IntentResult, RefundResult
from gateways.stripe import parse_intent, parse_refund
from payments.locks import lock_payment
from payments.models import ChangeSource, Payment
from payments.services import payment_apply_intent, payment_flag_dispute
from refunds.locks import lock_refund
from refunds.models import Refund
from refunds.services import refund_apply_gateway_refund, refund_record_external
from webhooks.models import IgnoredReason, WebhookStatus

SOURCE = ChangeSource.WEBHOOK


@dataclass(frozen=True)
class Outcome:
    """What processing made of an event: the row's status, why it was ignored, what it touched."""

    status: str
    ignored_reason: str = ""
    payment: Payment | None = None
    refund: Refund | None = None


def _processed(payment: Payment | None = None, refund: Refund | None = None) -> Outcome:
    return Outcome(WebhookStatus.PROCESSED, payment=payment, refund=refund)


def _ignored(reason: str, payment: Payment | None = None, refund: Refund | None = None) -> Outcome:
    return Outcome(WebhookStatus.IGNORED, ignored_reason=reason, payment=payment, refund=refund)


def _id(value: Any) -> str:
    """An id from a field that may be a string, an expanded object or empty."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def _metadata(value: Any) -> dict[str, str]:
    return {str(key): str(item) for key, item in value.items()} if isinstance(value, Mapping) else {}


def _find_payment(*, intent_reference: str, metadata: Mapping[str, str]) -> Payment | None:
    """Our payment for a PaymentIntent: by the id we stored, else by our id in the intent's metadata."""
    if intent_reference:
        payment = Payment.objects.filter(gateway_reference=intent_reference).first()
        if payment is not None:
            return payment
    our_id = metadata.get("payment_id")
    if not our_id:
        return None
    payment = Payment.objects.filter(public_id=our_id).first()
    # Our id on another intent than the one we stored is not ours to apply.
    if payment is None or (payment.gateway_reference and intent_reference != payment.gateway_reference):
        return None
    return payment


def _find_refund(result: RefundResult) -> Refund | None:
    """Our refund: by the gateway's id we stored, else by our id in the refund's metadata."""
    refund = Refund.objects.filter(gateway_reference=result.reference).first()
    if refund is not None:
        return refund
    our_id = result.metadata.get("refund_id")
    if not our_id:
        return None
    refund = Refund.objects.filter(public_id=our_id).first()
    if refund is None or (refund.gateway_reference and refund.gateway_reference != result.reference):
        return None
    return refund


# --- payment intents ----------------------------------------------------------------------------
def _apply_intent(payment: Payment, intent: IntentResult) -> Outcome:
    before = lock_payment(payment.pk).status
    after = payment_apply_intent(payment_id=payment.pk, intent=intent, source=SOURCE)
    return _processed(payment=after) if after.status != before else _ignored(IgnoredReason.STALE, payment=after)


def on_payment_intent(intent_data: dict[str, Any]) -> Outcome:
    """payment_intent.*: the intent as Stripe sees it; the state machine takes forward moves only."""
    intent = parse_intent(intent_data)
    payment = _find_payment(intent_reference=intent.reference, metadata=intent.metadata)
    if payment is None:
        return _ignored(IgnoredReason.UNKNOWN_OBJECT)
    return _apply_intent(payment, intent)


def on_charge_captured(charge: dict[str, Any]) -> Outcome:
    """charge.captured: a manual capture went through; the intent has succeeded for the captured amount."""
    reference = _id(charge.get("payment_intent"))
    payment = _find_payment(intent_reference=reference, metadata=_metadata(charge.get("metadata")))
    if payment is None:
        return _ignored(IgnoredReason.UNKNOWN_OBJECT)
    if not charge.get("captured"):
        return _ignored(IgnoredReason.STALE, payment=payment)
    amount = int(charge["amount"])
    intent = IntentResult(
        reference=reference or payment.gateway_reference or "",
        status="succeeded",
        amount=amount,
        currency=str(charge["currency"]).lower(),
        capture_method=payment.capture_method,
        amount_received=int(charge.get("amount_captured") or amount),
    )
    return _apply_intent(payment, intent)


# --- refunds ------------------------------------------------------------------------------------
def _apply_refund(result: RefundResult) -> Outcome:
    """A refund we asked for gets the gateway's outcome; one made elsewhere is recorded once."""
    known = _find_refund(result)
    payment = (
        known.payment
        if known is not None
        else _find_payment(intent_reference=result.intent_reference, metadata=result.metadata)
    )
    if payment is None:
        return _ignored(IgnoredReason.UNKNOWN_OBJECT)
    locked_payment = lock_payment(payment.pk)
    known = _find_refund(result)  # again, under the payment's lock: every refund writer holds it
    if known is None:
        created = refund_record_external(payment_id=payment.pk, result=result, source=SOURCE)
        return _processed(payment=locked_payment, refund=created)
    locked = lock_refund(known.pk)
    before = (locked.status, locked.gateway_reference)
    after = refund_apply_gateway_refund(refund_id=known.pk, result=result, source=SOURCE)
    if (after.status, after.gateway_reference) != before:
        return _processed(payment=locked_payment, refund=after)
    return _ignored(IgnoredReason.STALE, payment=locked_payment, refund=after)


def on_refund(refund: dict[str, Any]) -> Outcome:
    """refund.created / refund.updated / refund.failed / charge.refund.updated: the object is a Refund."""
    return _apply_refund(parse_refund(refund))


def on_charge_refunded(charge: dict[str, Any]) -> Outcome:
    """charge.refunded: apply each refund the charge lists (API versions since 2022-11-15 list none)."""
    reference = _id(charge.get("payment_intent"))
    refunds = charge.get("refunds")
    listed = refunds.get("data") if isinstance(refunds, Mapping) else None
    if not listed:
        payment = _find_payment(intent_reference=reference, metadata=_metadata(charge.get("metadata")))
        if payment is None:
            return _ignored(IgnoredReason.UNKNOWN_OBJECT)
        return _ignored(IgnoredReason.NO_REFUND_DETAILS, payment=payment)
    outcomes = [on_refund({**item, "payment_intent": item.get("payment_intent") or reference}) for item in listed]
    moved = [outcome for outcome in outcomes if outcome.status == WebhookStatus.PROCESSED]
    return moved[-1] if moved else outcomes[-1]


# --- disputes -----------------------------------------------------------------------------------
def on_dispute_created(dispute: dict[str, Any]) -> Outcome:
    """charge.dispute.created: flag the payment for the back office (its status does not change)."""
    payment = _find_payment(intent_reference=_id(dispute.get("payment_intent")), metadata={})
    if payment is None:
        return _ignored(IgnoredReason.UNKNOWN_OBJECT)
    flagged = payment_flag_dispute(
        payment_id=payment.pk,
        dispute_reference=str(dispute["id"]),
        reason=str(dispute.get("reason") or ""),
        amount=int(dispute.get("amount") or 0),
        currency=str(dispute.get("currency") or payment.currency).lower(),
    )
    payment.refresh_from_db()
    return _processed(payment=payment) if flagged else _ignored(IgnoredReason.STALE, payment=payment)


HANDLERS: dict[str, Callable[[dict[str, Any]], Outcome]] = {
    "payment_intent.succeeded": on_payment_intent,
    "payment_intent.payment_failed": on_payment_intent,
    "payment_intent.canceled": on_payment_intent,
    "payment_intent.amount_capturable_updated": on_payment_intent,
    "payment_intent.requires_action": on_payment_intent,
    "payment_intent.processing": on_payment_intent,
    "charge.captured": on_charge_captured,
    "charge.refunded": on_charge_refunded,
    "charge.refund.updated": on_refund,
    "refund.created": on_refund,
    "refund.updated": on_refund,
    "refund.failed": on_refund,
    "charge.dispute.created": on_dispute_created,
}
HANDLED_TYPES = frozenset(HANDLERS)


def dispatch(event_type: str, data_object: dict[str, Any]) -> Outcome:
    """Run the handler of `event_type` on the event's object; unknown types are ignored."""
    handler = HANDLERS.get(event_type)
    if handler is None:
        return _ignored(IgnoredReason.UNKNOWN_TYPE)
    return handler(data_object)
