"""The API's JSON shapes of a price, a subscription and an invoice (events carry the same, without metadata
and without the invoice's hosted page link)."""

from typing import Any

from config.api.rendering import iso
from subscriptions.models import Invoice, Price, Subscription


def render_price(price: Price) -> dict[str, Any]:
    return {
        "id": price.reference,
        "object": "price",
        "product": {"id": price.product.reference, "name": price.product.name},
        "unit_amount": price.unit_amount,
        "currency": price.currency,
        "recurring": {"interval": price.interval, "interval_count": price.interval_count},
        "trial_period_days": price.trial_period_days,
        "active": price.active,
    }


def render_subscription(subscription: Subscription) -> dict[str, Any]:
    method = subscription.default_payment_method
    latest = subscription.latest_invoice
    return {
        "id": subscription.public_id,
        "object": "subscription",
        "customer_id": subscription.customer.customer_id,
        "price": subscription.price.reference,
        "quantity": subscription.quantity,
        "status": subscription.status,
        "trial_start": iso(subscription.trial_start),
        "trial_end": iso(subscription.trial_end),
        "current_period_start": iso(subscription.current_period_start),
        "current_period_end": iso(subscription.current_period_end),
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "canceled_at": iso(subscription.canceled_at),
        "default_payment_method": method.public_id if method is not None else None,
        "latest_invoice": latest.public_id if latest is not None else None,
        "gateway_reference": subscription.gateway_reference,
        "metadata": subscription.metadata,
        "created": iso(subscription.created_at),
        "updated": iso(subscription.updated_at),
    }


def subscription_event_data(subscription: Subscription) -> dict[str, Any]:
    """The subscription as an event carries it: no storefront metadata (it may hold personal data)."""
    shown = render_subscription(subscription)
    del shown["metadata"]
    return shown


def render_invoice(invoice: Invoice) -> dict[str, Any]:
    subscription = invoice.subscription
    payment = invoice.payment
    return {
        "id": invoice.public_id,
        "object": "invoice",
        "customer_id": invoice.customer.customer_id,
        "subscription": subscription.public_id if subscription is not None else None,
        "status": invoice.status,
        "currency": invoice.currency,
        "amount_due": invoice.amount_due,
        "amount_paid": invoice.amount_paid,
        "amount_remaining": invoice.amount_remaining,
        "attempt_count": invoice.attempt_count,
        "next_payment_attempt": iso(invoice.next_payment_attempt),
        "period_start": iso(invoice.period_start),
        "period_end": iso(invoice.period_end),
        "lines": [
            {
                "description": line.description,
                "amount": line.amount,
                "quantity": line.quantity,
                "price": line.price_reference or None,
                "period": {"start": iso(line.period_start), "end": iso(line.period_end)},
            }
            for line in invoice.lines.all()
        ],
        "payment": payment.public_id if payment is not None else None,
        "hosted_invoice_url": invoice.hosted_invoice_url or None,
        "gateway_reference": invoice.gateway_reference,
        "created": iso(invoice.created_at),
        "updated": iso(invoice.updated_at),
    }


def invoice_event_data(invoice: Invoice) -> dict[str, Any]:
    """The invoice as an event carries it: no `hosted_invoice_url` (whoever holds the link sees the customer's
    name, e-mail and address on the page, and may pay)."""
    shown = render_invoice(invoice)
    del shown["hosted_invoice_url"]
    return shown
