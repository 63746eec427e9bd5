"""The API's JSON shape of payments and events, shared by the API and the event snapshots."""

from datetime import datetime
from typing import Any

from django.core.exceptions import ObjectDoesNotExist

from payments.models import Event, Payment


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (f".{value.microsecond // 1000:03d}Z" if value.microsecond else "Z")


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


def _assessment(payment: Payment) -> Any:
    """The payment's risk assessment, or None (payments created before the rules existed have none)."""
    try:
        return payment.risk_assessment
    except ObjectDoesNotExist:
        return None


def _risk(payment: Payment) -> dict[str, Any] | None:
    assessment = _assessment(payment)
    return None if assessment is None else {"score": assessment.score, "level": assessment.level}


def _review(payment: Payment) -> dict[str, Any] | None:
    assessment = _assessment(payment)
    if assessment is None or not assessment.review_state:
        return None
    return {"state": assessment.review_state, "reasons": assessment.reason_codes}


def review_state(payment: Payment) -> str:
    """The review state: "" (no review), "pending", "approved" or "rejected"."""
    assessment = _assessment(payment)
    return assessment.review_state if assessment is not None else ""


def render_event(event: Event) -> dict[str, Any]:
    return {
        "id": event.public_id,
        "object": "event",
        "type": event.type,
        "created": iso(event.created_at),
        "sequence": event.sequence,
        "payment": event.payment.public_id if event.payment else None,
        "data": {"object": event.data},
    }
