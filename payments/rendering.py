"""The API's JSON shape of a payment, shared by the API and the event snapshots."""

from typing import Any

from config.api.rendering import iso
from payments.models import Payment


def render_payment(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.public_id,
        "object": "payment",
        "amount": payment.amount,
        "currency": payment.currency,
        "status": payment.status,
        "capture_method": payment.capture_method,
        "amount_capturable": payment.amount_capturable,
        "amount_received": payment.amount_received,
        "amount_refunded": payment.amount_refunded,
        "customer_id": payment.customer_id,
        "order_id": payment.order_id or None,
        "description": payment.description or None,
        "metadata": payment.metadata,
        "payment_method": payment.payment_method or None,
        "client_secret": payment.client_secret or None,
        "gateway": payment.gateway,
        "gateway_reference": payment.gateway_reference,
        "failure_code": payment.failure_code or None,
        "failure_message": payment.failure_message or None,
        "cancellation_reason": payment.cancellation_reason or None,
        "customer_email": payment.customer_email or None,
        "risk": _risk(payment),
        "review": _review(payment),
        "created": iso(payment.created_at),
        "updated": iso(payment.updated_at),
    }


def _risk(payment: Payment) -> dict[str, Any] | None:
    """What the risk check said (payments created before the checks existed have nothing)."""
    if payment.risk_score is None:
        return None
    return {"score": payment.risk_score, "level": payment.risk_level}


def _review(payment: Payment) -> dict[str, Any] | None:
    if not payment.review_state:
        return None
    return {"state": payment.review_state, "reasons": payment.review_reasons}
