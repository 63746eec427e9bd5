"""What each Stripe event type means for our payments, refunds, customers, saved methods, subscriptions and invoices.

Handlers run inside the transaction of `webhooks.services.webhook_event_process`, read the event's
own object (no re-fetch from Stripe) and call the payments and refunds services, which own every
status change. Each lock is taken the same way as everywhere: payment first, then refund. A handler
locks the payment itself before reading the status it compares with, so "did this event move
anything?" is answered under the same lock as the move.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from config.prepared import PreparedQuery, Slots
from config.tasks import enqueue_on_commit
from customers.models import PaymentMethod, PaymentMethodStatus
from customers.selectors import customer_token_by_reference
from customers.services import (
    SYNC_CUSTOMER_TASK,
    SYNC_PAYMENT_METHOD_TASK,
    customer_gateway_deleted,
    payment_method_detach_local,
)
from disputes import inbox as disputes
from gateways.base import IntentResult, RefundResult
from gateways.stripe import parse_intent, parse_refund
from gateways.stripe.parsers import parse_customer, parse_payment_method, parse_setup_intent
from payments.locks import lock_payment
from payments.models import ChangeSource, Payment
from payments.services import payment_apply_intent
from refunds.locks import lock_refund
from refunds.models import Refund
from refunds.services import refund_apply_gateway_refund, refund_record_external
from subscriptions import catalog
from subscriptions import inbox as billing
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
    """Our payment for a PaymentIntent, locked: by the id we stored, else by our id in the intent's metadata.

    Found by its id and gateway id alone (compiled once, no row decrypted), then locked and read: every
    handler that finds a payment goes on to compare with or change it under its lock.
    """
    if intent_reference and (rows := _by_reference.execute(values={"reference": intent_reference})):
        return lock_payment(rows[0][0])
    our_id = metadata.get("payment_id")
    if not our_id or not (rows := _by_public_id.execute(values={"public_id": our_id})):
        return None
    payment_id, reference = rows[0]
    # Our id on another intent than the one we stored is not ours to apply.
    if reference and intent_reference != reference:
        return None
    return lock_payment(payment_id)


@PreparedQuery
def _by_reference(slots: Slots) -> QuerySet[Any, Any]:
    return Payment.objects.filter(gateway_reference=slots.text("reference")).values_list("pk")


@PreparedQuery
def _by_public_id(slots: Slots) -> QuerySet[Any, Any]:
    return Payment.objects.filter(public_id=slots.text("public_id")).values_list("pk", "gateway_reference")


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
    before = payment.status  # read under its lock (`_find_payment`)
    after = payment_apply_intent(payment_id=payment.pk, intent=intent, source=SOURCE, locked=payment)
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
    locked_payment = (  # `_find_payment` locks what it finds
        lock_payment(known.payment_id)
        if known is not None
        else _find_payment(intent_reference=result.intent_reference, metadata=result.metadata)
    )
    if locked_payment is None:
        return _ignored(IgnoredReason.UNKNOWN_OBJECT)
    known = _find_refund(result)  # again, under the payment's lock: every refund writer holds it
    if known is None:
        created = refund_record_external(payment_id=locked_payment.pk, result=result, source=SOURCE)
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
def _dispute(dispute: dict[str, Any], event_type: str) -> Outcome:
    """charge.dispute.*: applied once, in any order (see `disputes.inbox`); the payment's status does not change."""
    found, moved = disputes.dispute_news(dispute, event_type=event_type)
    if found is None:
        return _ignored(IgnoredReason.UNKNOWN_OBJECT)
    return _processed(payment=found.payment) if moved else _ignored(IgnoredReason.STALE, payment=found.payment)


def on_dispute_created(dispute: dict[str, Any]) -> Outcome:
    return _dispute(dispute, "charge.dispute.created")


def on_dispute_updated(dispute: dict[str, Any]) -> Outcome:
    return _dispute(dispute, "charge.dispute.updated")


def on_dispute_closed(dispute: dict[str, Any]) -> Outcome:
    return _dispute(dispute, "charge.dispute.closed")


def on_dispute_funds_withdrawn(dispute: dict[str, Any]) -> Outcome:
    return _dispute(dispute, "charge.dispute.funds_withdrawn")


def on_dispute_funds_reinstated(dispute: dict[str, Any]) -> Outcome:
    return _dispute(dispute, "charge.dispute.funds_reinstated")


# --- customers and saved payment methods ----------------------------------------------------------
# Stripe's customer events carry no version to compare, and a `payment_method.attached` cannot tell that a
# `detached` came after it: so an event that would save or change something only asks for the gateway's
# state now (a task, after commit: no gateway call inside this transaction), which a late event cannot undo.
# Detaching and deleting are for good at Stripe (a detached method is never attached again): applied at once.
# Objects are found by the gateway's id alone, as payments are (the ids of different gateways never meet).
def _known_method(reference: str) -> PaymentMethod | None:
    return PaymentMethod.objects.filter(gateway_reference=reference).first()


def _sync_method(reference: str, customer_reference: str) -> Outcome:
    token = customer_token_by_reference(reference=customer_reference)
    if token is None:
        return _ignored(IgnoredReason.UNKNOWN_OBJECT)
    if _known_method(reference) is not None:
        return _ignored(IgnoredReason.STALE)  # saved already (by our API call, or an earlier event)
    enqueue_on_commit(SYNC_PAYMENT_METHOD_TASK, gateway=token.gateway, reference=reference)
    return _processed()


def on_setup_intent_succeeded(setup_intent: dict[str, Any]) -> Outcome:
    """setup_intent.succeeded: Stripe.js saved a card for the customer; save it here (read at the gateway)."""
    result = parse_setup_intent(setup_intent)
    if result.status != "succeeded" or not result.payment_method or not result.customer_reference:
        return _ignored(IgnoredReason.STALE)
    return _sync_method(result.payment_method, result.customer_reference)


def on_payment_method_attached(payment_method: dict[str, Any]) -> Outcome:
    """payment_method.attached: a card saved outside our API (the Dashboard, a payment's setup_future_usage)."""
    result = parse_payment_method(payment_method)
    if not result.customer_reference:
        return _ignored(IgnoredReason.STALE)
    return _sync_method(result.reference, result.customer_reference)


def on_payment_method_detached(payment_method: dict[str, Any]) -> Outcome:
    """payment_method.detached: it can no longer be charged (for good): detach it here, once."""
    method = _known_method(parse_payment_method(payment_method).reference)
    if method is None:
        return _ignored(IgnoredReason.UNKNOWN_OBJECT)
    if method.status != PaymentMethodStatus.ACTIVE:
        return _ignored(IgnoredReason.STALE)
    moved = payment_method_detach_local(method_id=method.pk, source=SOURCE)
    return _processed() if moved else _ignored(IgnoredReason.STALE)


def on_customer_updated(customer: dict[str, Any]) -> Outcome:
    """customer.updated: e-mail, name or default changed at Stripe; apply what Stripe holds now."""
    token = customer_token_by_reference(reference=parse_customer(customer).reference)
    if token is None:
        return _ignored(IgnoredReason.UNKNOWN_OBJECT)
    enqueue_on_commit(SYNC_CUSTOMER_TASK, gateway=token.gateway, reference=token.reference)
    return _processed()


def on_customer_deleted(customer: dict[str, Any]) -> Outcome:
    """customer.deleted: Stripe detached its methods; so do we, and the customer is gone until made again."""
    token = customer_token_by_reference(reference=parse_customer(customer).reference)
    if token is None:
        return _ignored(IgnoredReason.UNKNOWN_OBJECT)
    moved = customer_gateway_deleted(customer=token.customer, gateway=token.gateway, reference=token.reference)
    return _processed() if moved else _ignored(IgnoredReason.STALE)


# --- subscriptions and invoices (the gateway's billing engine) ---------------------------------------------
def _billing(moved: bool | None) -> Outcome:
    if moved is None:
        return _ignored(IgnoredReason.UNKNOWN_OBJECT)
    return _processed() if moved else _ignored(IgnoredReason.STALE)


def on_subscription(subscription: dict[str, Any]) -> Outcome:
    """customer.subscription.created|updated|deleted: applied when it is news (see `subscriptions.inbox`)."""
    return _billing(billing.subscription_news(subscription))


def on_subscription_trial_will_end(subscription: dict[str, Any]) -> Outcome:
    return _billing(billing.subscription_trial_will_end(subscription))


def on_invoice(invoice: dict[str, Any]) -> Outcome:
    """invoice.created|finalized|voided|marked_uncollectible: the invoice, forward only."""
    return _billing(billing.invoice_news(invoice, charged=False))


def on_invoice_charged(invoice: dict[str, Any]) -> Outcome:
    """invoice.paid|payment_failed: the invoice, and its charge recorded as its payment (once per intent)."""
    return _billing(billing.invoice_news(invoice, charged=True))


def on_product(product: dict[str, Any]) -> Outcome:
    """product.created|updated: the mirrored product's name (see `subscriptions.catalog`)."""
    return _billing(catalog.product_news(product))


def on_product_deleted(product: dict[str, Any]) -> Outcome:
    return _billing(catalog.product_news(product, deleted=True))


def on_price(price: dict[str, Any]) -> Outcome:
    """price.created|updated: a recurring price mirrored (one-off prices are not ours)."""
    return _billing(catalog.price_news(price))


def on_price_deleted(price: dict[str, Any]) -> Outcome:
    return _billing(catalog.price_news(price, deleted=True))


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
    "charge.dispute.updated": on_dispute_updated,
    "charge.dispute.closed": on_dispute_closed,
    "charge.dispute.funds_withdrawn": on_dispute_funds_withdrawn,
    "charge.dispute.funds_reinstated": on_dispute_funds_reinstated,
    "setup_intent.succeeded": on_setup_intent_succeeded,
    "payment_method.attached": on_payment_method_attached,
    "payment_method.detached": on_payment_method_detached,
    "customer.updated": on_customer_updated,
    "customer.deleted": on_customer_deleted,
    "customer.subscription.created": on_subscription,
    "customer.subscription.updated": on_subscription,
    "customer.subscription.deleted": on_subscription,
    "customer.subscription.trial_will_end": on_subscription_trial_will_end,
    "invoice.created": on_invoice,
    "invoice.finalized": on_invoice,
    "invoice.voided": on_invoice,
    "invoice.marked_uncollectible": on_invoice,
    "invoice.paid": on_invoice_charged,
    "invoice.payment_failed": on_invoice_charged,
    "product.created": on_product,
    "product.updated": on_product,
    "product.deleted": on_product_deleted,
    "price.created": on_price,
    "price.updated": on_price,
    "price.deleted": on_price_deleted,
}
HANDLED_TYPES = frozenset(HANDLERS)


def dispatch(event_type: str, data_object: dict[str, Any]) -> Outcome:
    """Run the handler of `event_type` on the event's object; unknown types are ignored."""
    handler = HANDLERS.get(event_type)
    if handler is None:
        return _ignored(IgnoredReason.UNKNOWN_TYPE)
    return handler(data_object)
