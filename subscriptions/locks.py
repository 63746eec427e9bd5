"""Row locks. Lock order everywhere: the subscription first, then its invoices (by pk)."""

from subscriptions.models import Invoice, Subscription


def lock_subscription(subscription_id: int) -> Subscription:
    """Lock a subscription row (with what it renders) until the surrounding transaction ends."""
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("customer", "price__product", "default_payment_method", "latest_invoice")
        .get(pk=subscription_id)
    )


def lock_invoice(invoice_id: int) -> Invoice:
    return Invoice.objects.select_for_update(of=("self",)).select_related("customer", "subscription").get(pk=invoice_id)
