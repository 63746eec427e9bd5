"""Public parsers of Stripe objects (API responses and webhook payloads) into the gateway's plain results.

Fields that Stripe-compatible test servers leave out are read defensively, with fallbacks.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateways.base import (
    CardDetails,
    CustomerResult,
    IntentResult,
    PaymentMethodResult,
    RefundResult,
    SetupIntentResult,
)
from gateways.billing import InvoiceLineResult, InvoiceResult, PriceResult, SubscriptionResult
from gateways.disputes import EVIDENCE_FILE_FIELDS, EVIDENCE_TEXT_FIELDS, DisputeResult

_CAPTURE_METHODS = {"automatic": "automatic", "automatic_async": "automatic", "manual": "manual"}
# A refund waiting for the customer (requires_action) is still pending for us.
_REFUND_STATUSES = {
    "requires_action": "pending",
    "pending": "pending",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}


def parse_created_at(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _id(value: Any) -> str:
    """An id from a field that may be a string, an expanded object or empty."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def _metadata(value: Any) -> dict[str, str]:
    return {str(key): str(item) for key, item in (value or {}).items()}


def parse_failure_code(decline_code: Any, code: Any) -> str:
    """Stripe's decline_code when it says more than the code (`insufficient_funds`), else the code."""
    if decline_code and decline_code != "generic_decline":
        return str(decline_code)
    return str(code or "card_declined")


def parse_intent(data: Mapping[str, Any]) -> IntentResult:
    """Read a PaymentIntent defensively: fields Stripe-compatible servers may leave out have fallbacks."""
    amount, status = int(data["amount"]), str(data["status"])
    error = data.get("last_payment_error") or {}
    capturable = data.get("amount_capturable")
    received = data.get("amount_received")
    if received is None:
        charge = data.get("latest_charge")  # an id, or the charge itself when expanded
        if isinstance(charge, Mapping) and charge.get("captured"):
            received = charge.get("amount_captured") or charge.get("amount")
        else:
            received = amount if status == "succeeded" else 0
    return IntentResult(
        reference=str(data["id"]),
        status=status,
        amount=amount,
        currency=str(data["currency"]).lower(),
        capture_method=_CAPTURE_METHODS.get(str(data.get("capture_method")), "automatic"),
        amount_capturable=int(capturable if capturable is not None else amount * (status == "requires_capture")),
        amount_received=int(received or 0),
        client_secret=str(data.get("client_secret") or ""),
        payment_method=_id(data.get("payment_method")),
        failure_code=parse_failure_code(error.get("decline_code"), error.get("code")) if error else "",
        failure_message=str(error.get("message") or ""),
        created_at=parse_created_at(data.get("created")),
        metadata=_metadata(data.get("metadata")),
    )


def parse_refund(data: Mapping[str, Any]) -> RefundResult:
    return RefundResult(
        reference=str(data["id"]),
        intent_reference=_id(data.get("payment_intent")),
        status=_REFUND_STATUSES.get(str(data.get("status")), "pending"),
        amount=int(data["amount"]),
        currency=str(data["currency"]).lower(),
        failure_reason=str(data.get("failure_reason") or ""),
        created_at=parse_created_at(data.get("created")),
        metadata=_metadata(data.get("metadata")),
    )


def parse_customer(data: Mapping[str, Any]) -> CustomerResult:
    """A Customer, or the stub Stripe answers for a deleted one (`{"id", "object", "deleted": true}`)."""
    settings = data.get("invoice_settings") or {}
    return CustomerResult(
        reference=str(data["id"]),
        email=str(data.get("email") or ""),
        name=str(data.get("name") or ""),
        default_payment_method=_id(settings.get("default_payment_method")),
        metadata=_metadata(data.get("metadata")),
        deleted=bool(data.get("deleted")),
        created_at=parse_created_at(data.get("created")),
    )


def parse_card(card: Mapping[str, Any] | None) -> CardDetails | None:
    """The card's safe details (brand, last4, expiry, funding, country, fingerprint), None when not a card."""
    if not card:
        return None
    return CardDetails(
        brand=str(card.get("brand") or "unknown").lower(),
        last4=str(card.get("last4") or ""),
        exp_month=int(card.get("exp_month") or 0),
        exp_year=int(card.get("exp_year") or 0),
        funding=str(card.get("funding") or "unknown"),
        country=str(card.get("country") or ""),
        fingerprint=str(card.get("fingerprint") or ""),
    )


def parse_payment_method(data: Mapping[str, Any]) -> PaymentMethodResult:
    return PaymentMethodResult(
        reference=str(data["id"]),
        type=str(data.get("type") or "card"),
        customer_reference=_id(data.get("customer")),
        card=parse_card(data.get("card")),
        created_at=parse_created_at(data.get("created")),
    )


def parse_setup_intent(data: Mapping[str, Any]) -> SetupIntentResult:
    return SetupIntentResult(
        reference=str(data["id"]),
        status=str(data["status"]),
        customer_reference=_id(data.get("customer")),
        client_secret=str(data.get("client_secret") or ""),
        payment_method=_id(data.get("payment_method")),
        created_at=parse_created_at(data.get("created")),
    )


# --- billing (gateways.billing) -------------------------------------------------------------------------
def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def parse_price(data: Mapping[str, Any]) -> PriceResult:
    """A Price; its product an id, or the Product when expanded (then its name is known)."""
    product = data.get("product")
    recurring = data.get("recurring") or {}
    return PriceResult(
        reference=str(data["id"]),
        product_reference=_id(product),
        product_name=str(product.get("name") or "")
        if isinstance(product, Mapping)
        else str(data.get("nickname") or ""),
        unit_amount=int(data.get("unit_amount") or 0),
        currency=str(data["currency"]).lower(),
        interval=str(recurring.get("interval") or "month"),
        interval_count=int(recurring.get("interval_count") or 1),
        trial_period_days=recurring.get("trial_period_days"),
        active=bool(data.get("active", True)),
    )


def parse_invoice(data: Mapping[str, Any]) -> InvoiceResult:
    """An Invoice; `payment_intent` an id or expanded (then its last error gives `failure_code`)."""
    intent = data.get("payment_intent")
    error = (intent.get("last_payment_error") if isinstance(intent, Mapping) else None) or {}
    lines = []
    for line in (data.get("lines") or {}).get("data") or []:
        period = line.get("period") or {}
        price = line.get("price") or line.get("plan") or {}
        lines.append(
            InvoiceLineResult(
                description=str(line.get("description") or ""),
                amount=int(line.get("amount") or 0),
                quantity=int(line.get("quantity") or 0),
                price_reference=_id(price),
                period_start=_when(period.get("start")) or datetime.fromtimestamp(0, tz=UTC),
                period_end=_when(period.get("end")) or datetime.fromtimestamp(0, tz=UTC),
            )
        )
    amount_due = int(data.get("amount_due") or 0)
    amount_paid = int(data.get("amount_paid") or 0)
    remaining = data.get("amount_remaining")
    return InvoiceResult(
        reference=str(data["id"]),
        customer_reference=_id(data.get("customer")),
        subscription_reference=_id(data.get("subscription")),
        status=str(data.get("status") or "draft"),
        currency=str(data.get("currency") or "").lower(),
        amount_due=amount_due,
        amount_paid=amount_paid,
        amount_remaining=int(remaining if remaining is not None else amount_due - amount_paid),
        attempt_count=int(data.get("attempt_count") or 0),
        next_payment_attempt=_when(data.get("next_payment_attempt")),
        period_start=_when(data.get("period_start")),
        period_end=_when(data.get("period_end")),
        lines=tuple(lines),
        payment_intent_reference=_id(intent),
        failure_code=parse_failure_code(error.get("decline_code"), error.get("code")) if error else "",
        hosted_invoice_url=str(data.get("hosted_invoice_url") or ""),
        created_at=parse_created_at(data.get("created")),
    )


def parse_subscription(data: Mapping[str, Any]) -> SubscriptionResult:
    """A Subscription (`latest_invoice` an id or expanded); the period read from the item on newer API versions."""
    item = ((data.get("items") or {}).get("data") or [{}])[0]
    price = item.get("price") or item.get("plan") or {}
    latest = data.get("latest_invoice")
    start = data.get("current_period_start") or item.get("current_period_start")
    end = data.get("current_period_end") or item.get("current_period_end")
    return SubscriptionResult(
        reference=str(data["id"]),
        customer_reference=_id(data.get("customer")),
        price_reference=_id(price),
        quantity=int(item.get("quantity") or data.get("quantity") or 1),
        status=str(data["status"]),
        current_period_start=_when(start) or datetime.fromtimestamp(0, tz=UTC),
        current_period_end=_when(end) or datetime.fromtimestamp(0, tz=UTC),
        trial_start=_when(data.get("trial_start")),
        trial_end=_when(data.get("trial_end")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        canceled_at=_when(data.get("canceled_at")),
        default_payment_method=_id(data.get("default_payment_method")),
        latest_invoice=parse_invoice(latest) if isinstance(latest, Mapping) and latest.get("id") else None,
        metadata=_metadata(data.get("metadata")),
        created_at=parse_created_at(data.get("created")),
    )


_EVIDENCE_FIELDS = frozenset(EVIDENCE_TEXT_FIELDS) | frozenset(EVIDENCE_FILE_FIELDS)


def _balance_moves(transactions: Any) -> tuple[bool, bool]:
    """(funds withdrawn, funds reinstated) from a Dispute's balance_transactions: objects, or ids only.

    Stripe lists zero, one or two: the withdrawal (a negative amount) and, once won, the reinstatement. An id
    without its object is read by its place in the list.
    """
    withdrawn = reinstated = False
    for position, transaction in enumerate(transactions or []):
        amount = transaction.get("amount") if isinstance(transaction, Mapping) else None
        if amount is None:
            withdrawn, reinstated = withdrawn or position == 0, reinstated or position == 1
        elif int(amount) < 0:
            withdrawn = True
        elif int(amount) > 0:
            reinstated = True
    return withdrawn, reinstated


def parse_dispute(data: Mapping[str, Any]) -> DisputeResult:
    """Read a Dispute (an API answer or a `charge.dispute.*` event's object); unset evidence is left out."""
    details = data.get("evidence_details") or {}
    evidence = {
        name: _id(value)  # a file field holds a file_ id, or the File when expanded
        for name, value in (data.get("evidence") or {}).items()
        if name in _EVIDENCE_FIELDS and value not in (None, "")
    }
    withdrawn, reinstated = _balance_moves(data.get("balance_transactions"))
    return DisputeResult(
        reference=str(data["id"]),
        intent_reference=_id(data.get("payment_intent")),
        charge_reference=_id(data.get("charge")),
        amount=int(data["amount"]),
        currency=str(data["currency"]).lower(),
        reason=str(data.get("reason") or "general"),
        status=str(data["status"]),
        evidence_due_by=parse_created_at(details.get("due_by")),
        has_evidence=bool(details.get("has_evidence")),
        submission_count=int(details.get("submission_count") or 0),
        is_charge_refundable=bool(data.get("is_charge_refundable")),
        funds_withdrawn=withdrawn,
        funds_reinstated=reinstated,
        evidence=evidence,
        created_at=parse_created_at(data.get("created")),
        metadata=_metadata(data.get("metadata")),
    )
