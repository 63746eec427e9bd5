"""The API's JSON shapes of a customer, a saved payment method and a setup intent, and their event snapshots.

Events never carry personal data (issue #20): a customer's event has its ids and default method only (no
e-mail, no name, no metadata); a payment method's has its ids, brand, last 4 digits and expiry.
"""

from typing import Any

from config.api.rendering import iso
from customers.models import Customer, PaymentMethod
from gateways.base import SetupIntentResult


def render_customer(customer: Customer, *, gateway: str, gateway_reference: str | None) -> dict[str, Any]:
    default = customer.default_payment_method
    return {
        "id": customer.public_id,
        "object": "customer",
        "customer_id": customer.customer_id,
        "email": customer.email or None,
        "name": customer.name or None,
        "default_payment_method": default.public_id if default is not None else None,
        "gateway": gateway,
        "gateway_reference": gateway_reference,
        "metadata": customer.metadata,
        "created": iso(customer.created_at),
        "updated": iso(customer.updated_at),
    }


def customer_event_data(customer: Customer, *, gateway: str, gateway_reference: str | None) -> dict[str, Any]:
    """The customer as an event carries it: ids only (no e-mail, name or metadata)."""
    shown = render_customer(customer, gateway=gateway, gateway_reference=gateway_reference)
    for personal in ("email", "name", "metadata"):
        del shown[personal]
    return shown


def render_payment_method(method: PaymentMethod, *, customer_id: str, is_default: bool) -> dict[str, Any]:
    return {
        "id": method.public_id,
        "object": "payment_method",
        "customer_id": customer_id,
        "type": method.type,
        "card": {
            "brand": method.brand,
            "last4": method.last4,
            "exp_month": method.exp_month,
            "exp_year": method.exp_year,
            "funding": method.funding,
            "country": method.country or None,
            "fingerprint": method.fingerprint or None,
        },
        "is_default": is_default,
        "status": method.status,
        "gateway_reference": method.gateway_reference,
        "created": iso(method.created_at),
    }


def payment_method_event_data(method: PaymentMethod, *, customer_id: str, is_default: bool) -> dict[str, Any]:
    """The method as an event carries it: ids, brand, last 4 digits and expiry only."""
    shown = render_payment_method(method, customer_id=customer_id, is_default=is_default)
    card = shown["card"]
    shown["card"] = {name: card[name] for name in ("brand", "last4", "exp_month", "exp_year")}
    return shown


def render_setup_intent(setup_intent: SetupIntentResult, *, customer_id: str) -> dict[str, Any]:
    return {
        "id": setup_intent.reference,
        "object": "setup_intent",
        "client_secret": setup_intent.client_secret or None,
        "status": setup_intent.status,
        "customer_id": customer_id,
    }
