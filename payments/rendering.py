"""The API's JSON shape of a payment, shared by the API and the event snapshots.

`render_payment_row` renders the fields of `PAYMENT_FIELDS` in that order, from a row the API's reads
fetch (payments/reads.py) or from a payment instance (`render_payment`): one shape, no serializer.
"""

from collections.abc import Sequence
from typing import Any

from config.api.rendering import iso
from payments.models import Payment

# What a payment's JSON shows, in the order `render_payment_row` takes them (model attribute names).
PAYMENT_FIELDS = (
    "public_id",
    "amount",
    "currency",
    "status",
    "capture_method",
    "amount_capturable",
    "amount_received",
    "amount_refunded",
    "amount_disputed",
    "disputed_at",
    "customer_id",
    "order_id",
    "description",
    "metadata",
    "payment_method",
    "client_secret",
    "gateway",
    "gateway_reference",
    "failure_code",
    "failure_message",
    "cancellation_reason",
    "customer_email",
    "risk_score",
    "risk_level",
    "review_state",
    "review_reasons",
    "invoice",
    "created_at",
    "updated_at",
)


def render_payment(payment: Payment) -> dict[str, Any]:
    return render_payment_row([getattr(payment, name) for name in PAYMENT_FIELDS])


# What the API shows the payment's own client but no event carries: a credential and personal data (issue #20).
NOT_IN_EVENTS = ("client_secret", "customer_email")


def render_payment_for_event(payment: Payment) -> dict[str, Any]:
    """The payment as its events carry it: the API's object without `client_secret` and `customer_email`."""
    shown = render_payment(payment)
    for name in NOT_IN_EVENTS:
        del shown[name]
    return shown


def render_payment_row(row: Sequence[Any]) -> dict[str, Any]:
    """A payment from the values of `PAYMENT_FIELDS`, in that order (JSON columns already parsed)."""
    (
        public_id,
        amount,
        currency,
        status,
        capture_method,
        amount_capturable,
        amount_received,
        amount_refunded,
        amount_disputed,
        disputed_at,
        customer_id,
        order_id,
        description,
        metadata,
        payment_method,
        client_secret,
        gateway,
        gateway_reference,
        failure_code,
        failure_message,
        cancellation_reason,
        customer_email,
        risk_score,
        risk_level,
        review_state,
        review_reasons,
        invoice,
        created_at,
        updated_at,
    ) = row
    return {
        "id": public_id,
        "object": "payment",
        "amount": amount,
        "currency": currency,
        "status": status,
        "capture_method": capture_method,
        "amount_capturable": amount_capturable,
        "amount_received": amount_received,
        "amount_refunded": amount_refunded,
        "amount_disputed": amount_disputed,  # under open or lost disputes
        "disputed": disputed_at is not None,  # the bank opened a dispute (any, whatever its outcome)
        "customer_id": customer_id,
        "order_id": order_id or None,
        "description": description or None,
        "metadata": metadata,
        "payment_method": payment_method or None,
        "client_secret": client_secret or None,
        "gateway": gateway,
        "gateway_reference": gateway_reference,
        "failure_code": failure_code or None,
        "failure_message": failure_message or None,
        "cancellation_reason": cancellation_reason or None,
        "customer_email": customer_email or None,
        # what the risk check said (payments created before the checks existed have nothing)
        "risk": None if risk_score is None else {"score": risk_score, "level": risk_level},
        "review": {"state": review_state, "reasons": review_reasons} if review_state else None,
        "invoice": invoice or None,  # the in_... this payment charges (subscriptions), else null
        "created": iso(created_at),
        "updated": iso(updated_at),
    }
