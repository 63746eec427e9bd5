"""What the gateway's billing webhooks mean for our subscriptions and invoices (called by `webhooks.handlers`).

They run inside the webhook's processing transaction: no gateway call here. An event's object is applied when
it is news (a later period, a status ours can reach); news of the same period whose order the objects cannot
tell asks the gateway's state now (a task after commit), so a late event never moves a subscription back. An
attempted invoice's charge is recorded as its payment by a task after commit (it reads the intent at the
gateway), once per intent however many deliveries arrive. Each returns None for an object that is not ours,
else whether it moved anything.
"""

from typing import Any

from config.tasks import enqueue_on_commit
from customers.selectors import customer_token_by_reference
from payments.models import ChangeSource
from subscriptions import states
from subscriptions.models import Invoice, Subscription
from subscriptions.parsing import latest_invoice_reference, parse_invoice, parse_subscription
from subscriptions.services import (
    INVOICE_PAYMENT_TASK,
    SUBSCRIPTION_SYNC_TASK,
    invoice_needs_payment,
    invoice_record,
    subscription_apply,
)
from subscriptions.status import subscription_event

SOURCE = ChangeSource.WEBHOOK


def _gateway_of(customer_reference: str) -> str | None:
    token = customer_token_by_reference(reference=customer_reference)
    return token.gateway if token is not None else None


def subscription_news(data: dict[str, Any]) -> bool | None:
    """customer.subscription.created|updated|deleted: the subscription as the gateway sent it."""
    result = parse_subscription(data)
    local = Subscription.objects.filter(gateway_reference=result.reference).first()
    gateway = local.gateway if local is not None else _gateway_of(result.customer_reference)
    if gateway is None:
        return None
    if local is not None and result.current_period_start == local.current_period_start:
        if local.status in states.TERMINAL or result.status == local.status and _same(local, result):
            return False
        if result.status not in states.TERMINAL:  # same period: which came last? the gateway says
            enqueue_on_commit(SUBSCRIPTION_SYNC_TASK, gateway=gateway, reference=result.reference)
            return True
    subscription, moved = subscription_apply(
        result=result,
        gateway_name=gateway,
        source=SOURCE,
        latest_invoice_reference=latest_invoice_reference(data),
    )
    return None if subscription is None else moved


def _same(local: Subscription, result: Any) -> bool:
    method = local.default_payment_method
    return (
        local.price.reference == result.price_reference
        and local.quantity == result.quantity
        and local.cancel_at_period_end == result.cancel_at_period_end
        and local.current_period_end == result.current_period_end
        and (method.gateway_reference if method is not None else "") == result.default_payment_method
    )


def subscription_trial_will_end(data: dict[str, Any]) -> bool | None:
    """customer.subscription.trial_will_end (3 days before): told once per delivery id (the inbox dedupes)."""
    local = (
        Subscription.objects.select_related("customer", "price__product", "default_payment_method", "latest_invoice")
        .filter(gateway_reference=str(data.get("id") or ""))
        .first()
    )
    if local is None:
        return None
    if local.status != states.SubscriptionStatus.TRIALING:
        return False
    subscription_event(local, "subscription.trial_will_end")
    return True


def invoice_news(data: dict[str, Any], *, charged: bool) -> bool | None:
    """invoice.*: the invoice as the gateway sent it; `charged` (paid, payment_failed) records its payment."""
    result = parse_invoice(data)
    local = Invoice.objects.filter(gateway_reference=result.reference).first()
    gateway = local.gateway if local is not None else _gateway_of(result.customer_reference)
    if gateway is None:
        return None
    invoice, moved = invoice_record(result=result, gateway_name=gateway, source=SOURCE)
    if invoice is None:
        return None
    if charged and invoice_needs_payment(invoice) and (moved or invoice.payment_id is None):
        enqueue_on_commit(INVOICE_PAYMENT_TASK, invoice_id=invoice.pk)
        return True
    return moved
