"""Reads of prices, subscriptions and invoices: a storefront sees only its own (another client's is 404)."""

from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from accounts.models import ApiRole, User
from subscriptions.models import Invoice, Price, Subscription


def price_list() -> QuerySet[Price]:
    return Price.objects.select_related("product").order_by("-active", "-created_at", "-id")


def price_get(*, reference: str) -> Price:
    price = Price.objects.select_related("product").filter(reference=reference).first()
    if price is None:
        raise NotFound()
    return price


def subscription_queryset_for(*, client: User) -> QuerySet[Subscription]:
    """Finance clients read every subscription; a storefront only its own (with what they render)."""
    rows = Subscription.objects.select_related("customer", "price__product", "default_payment_method", "latest_invoice")
    return rows if client.api_role == ApiRole.FINANCE else rows.filter(client=client)


def subscription_get(*, client: User, public_id: str) -> Subscription:
    """:raises NotFound: no such subscription for this client."""
    subscription = subscription_queryset_for(client=client).filter(public_id=public_id).first()
    if subscription is None:
        raise NotFound()
    return subscription


def subscription_list(*, client: User, filters: dict[str, Any]) -> QuerySet[Subscription]:
    rows = subscription_queryset_for(client=client)
    if filters.get("customer_id"):
        rows = rows.filter(customer__customer_id=filters["customer_id"])
    if filters.get("status"):
        rows = rows.filter(status=filters["status"])
    return rows


def invoice_queryset_for(*, client: User) -> QuerySet[Invoice]:
    rows = Invoice.objects.select_related("customer", "subscription", "payment").prefetch_related("lines")
    return rows if client.api_role == ApiRole.FINANCE else rows.filter(client=client)


def invoice_get(*, client: User, public_id: str) -> Invoice:
    """:raises NotFound: no such invoice for this client."""
    invoice = invoice_queryset_for(client=client).filter(public_id=public_id).first()
    if invoice is None:
        raise NotFound()
    return invoice


def invoice_list(*, client: User, filters: dict[str, Any]) -> QuerySet[Invoice]:
    rows = invoice_queryset_for(client=client)
    if filters.get("customer_id"):
        rows = rows.filter(customer__customer_id=filters["customer_id"])
    if filters.get("subscription"):
        rows = rows.filter(subscription__public_id=filters["subscription"])
    if filters.get("status"):
        rows = rows.filter(status=filters["status"])
    return rows
