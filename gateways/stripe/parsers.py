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
