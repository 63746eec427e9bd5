"""What the gateway's catalog webhooks mean for our mirrored products and prices (called by `webhooks.handlers`).

`product.created|updated|deleted` and `price.created|updated|deleted`, inside the webhook's processing
transaction (no gateway call). They arrive in any order: a price whose product is not mirrored yet makes the
product with its id for a name, and the product's own event names it when it comes (before or after). A
price's amount, currency and interval never change at Stripe (a new price is made instead), so what an event
can change is `active` and the trial; `sync_prices` puts right anything a lost event left behind. Each returns
None for what is not ours (a one-off price: only recurring prices are mirrored), else whether it changed
anything.
"""

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import transaction

from gateways.billing import INTERVALS, PriceResult
from subscriptions.models import Price, Product
from subscriptions.services import price_record


def _gateway() -> str:
    return str(settings.PAYMENTS_GATEWAY)


def _product_reference(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def product_news(data: Mapping[str, Any], *, deleted: bool = False) -> bool | None:
    """product.created|updated (its name), product.deleted (its prices end: none can be subscribed to)."""
    reference = str(data.get("id") or "")
    name = str(data.get("name") or "")[:255]
    if not reference:
        return None
    gateway = _gateway()
    with transaction.atomic():
        product = Product.objects.select_for_update().filter(gateway=gateway, reference=reference).first()
        if product is None:
            if deleted:
                return None
            Product.objects.create(gateway=gateway, reference=reference, name=name or reference)
            return True
        changed = False
        if name and product.name != name:
            product.name = name
            product.save(update_fields=["name", "updated_at"])
            changed = True
        if deleted or data.get("active") is False:
            changed = bool(Price.objects.filter(product=product, active=True).update(active=False)) or changed
        return changed


def price_news(data: Mapping[str, Any], *, deleted: bool = False) -> bool | None:
    """price.created|updated|deleted: the recurring price upserted (a deleted one inactive)."""
    recurring = data.get("recurring")
    reference = str(data.get("id") or "")
    if not reference or not isinstance(recurring, Mapping) or recurring.get("interval") not in INTERVALS:
        return None
    gateway = _gateway()
    product_reference = _product_reference(data.get("product"))
    product = Product.objects.filter(gateway=gateway, reference=product_reference).first()
    expanded = data.get("product")
    name = (
        str(expanded.get("name") or "")
        if isinstance(expanded, Mapping)
        else (product.name if product is not None else "")
    )
    trial = recurring.get("trial_period_days")
    result = PriceResult(
        reference=reference,
        product_reference=product_reference,
        product_name=(name or product_reference)[:255],
        unit_amount=int(data.get("unit_amount") or 0),
        currency=str(data.get("currency") or "").lower(),
        interval=str(recurring["interval"]),
        interval_count=int(recurring.get("interval_count") or 1),
        trial_period_days=int(trial) if trial is not None else None,
        active=bool(data.get("active", True)) and not deleted,
    )
    if len(result.currency) != 3 or not result.product_reference:
        return None
    _, changed = price_record(result=result, gateway_name=gateway)
    return changed
