"""Stripe event payloads shaped after Stripe's API reference (Event, PaymentIntent, Charge, Refund, Dispute)."""

import secrets
import time
from typing import Any

API_VERSION = "2024-06-20"


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def event(event_type: str, data_object: dict[str, Any], *, event_id: str | None = None, **extra: Any) -> dict:
    """An Event (https://docs.stripe.com/api/events/object) wrapping `data_object`."""
    return {
        "id": event_id or _id("evt_"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": {"object": data_object, **extra},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": _id("req_"), "idempotency_key": None},
        "type": event_type,
    }


def payment_intent(
    reference: str,
    *,
    status: str,
    amount: int = 2000,
    currency: str = "usd",
    capture_method: str = "automatic",
    amount_capturable: int = 0,
    amount_received: int = 0,
    metadata: dict[str, str] | None = None,
    last_payment_error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A PaymentIntent (https://docs.stripe.com/api/payment_intents/object)."""
    return {
        "id": reference,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": amount_capturable,
        "amount_details": {"tip": {}},
        "amount_received": amount_received,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": {"allow_redirects": "never", "enabled": True},
        "canceled_at": int(time.time()) if status == "canceled" else None,
        "cancellation_reason": "requested_by_customer" if status == "canceled" else None,
        "capture_method": capture_method,
        "client_secret": f"{reference}_secret_{secrets.token_hex(8)}",
        "confirmation_method": "automatic",
        "created": int(time.time()) - 60,
        "currency": currency,
        "customer": None,
        "description": None,
        "last_payment_error": last_payment_error,
        "latest_charge": _id("ch_") if status in {"succeeded", "requires_capture"} else None,
        "livemode": False,
        "metadata": metadata or {},
        "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {}} if status == "requires_action" else None,
        "on_behalf_of": None,
        "payment_method": "pm_1PgafYLkdIwHu7ixVmQS4tJX",
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def card_error(code: str = "card_declined", decline_code: str = "insufficient_funds") -> dict[str, Any]:
    """A PaymentIntent's `last_payment_error` after a decline."""
    return {
        "charge": _id("ch_"),
        "code": code,
        "decline_code": decline_code,
        "doc_url": f"https://stripe.com/docs/error-codes/{code}",
        "message": "Your card has insufficient funds.",
        "payment_method": {"id": "pm_1PgafYLkdIwHu7ixVmQS4tJX", "object": "payment_method", "type": "card"},
        "type": "card_error",
    }


def refund(
    reference: str,
    *,
    intent: str,
    amount: int,
    status: str = "succeeded",
    currency: str = "usd",
    metadata: dict[str, str] | None = None,
    failure_reason: str | None = None,
) -> dict[str, Any]:
    """A Refund (https://docs.stripe.com/api/refunds/object)."""
    return {
        "id": reference,
        "object": "refund",
        "amount": amount,
        "balance_transaction": _id("txn_"),
        "charge": _id("ch_"),
        "created": int(time.time()),
        "currency": currency,
        "destination_details": {
            "card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"},
            "type": "card",
        },
        "failure_reason": failure_reason,
        "metadata": metadata or {},
        "payment_intent": intent,
        "reason": None,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def charge(
    *,
    intent: str,
    amount: int,
    amount_captured: int | None = None,
    amount_refunded: int = 0,
    captured: bool = True,
    currency: str = "usd",
    refunds: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Charge (https://docs.stripe.com/api/charges/object); `refunds` listed as in API versions before 2022-11-15."""
    charge_id = _id("ch_")
    body: dict[str, Any] = {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if amount_captured is None else amount_captured,
        "amount_refunded": amount_refunded,
        "balance_transaction": _id("txn_"),
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "captured": captured,
        "created": int(time.time()) - 60,
        "currency": currency,
        "customer": None,
        "description": None,
        "disputed": False,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {},
        "outcome": {"network_status": "approved_by_network", "risk_level": "normal", "type": "authorized"},
        "paid": True,
        "payment_intent": intent,
        "payment_method": "pm_1PgafYLkdIwHu7ixVmQS4tJX",
        "receipt_url": f"https://pay.stripe.com/receipts/{charge_id}",
        "refunded": amount_refunded == amount,
        "status": "succeeded",
    }
    if refunds is not None:
        body["refunds"] = {
            "object": "list",
            "data": refunds,
            "has_more": False,
            "total_count": len(refunds),
            "url": f"/v1/charges/{charge_id}/refunds",
        }
    return body


def dispute(*, intent: str, amount: int, reason: str = "fraudulent", currency: str = "usd") -> dict[str, Any]:
    """A Dispute (https://docs.stripe.com/api/disputes/object)."""
    return {
        "id": _id("dp_"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": _id("ch_"),
        "created": int(time.time()),
        "currency": currency,
        "evidence": {"customer_email_address": None, "product_description": None, "uncategorized_text": None},
        "evidence_details": {
            "due_by": int(time.time()) + 7 * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": True,
        "livemode": False,
        "metadata": {},
        "network_reason_code": "10.4",
        "payment_intent": intent,
        "reason": reason,
        "status": "warning_needs_response",
    }
